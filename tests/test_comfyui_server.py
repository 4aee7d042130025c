"""The node pack in a real ComfyUI: the example workflow through ComfyUI's HTTP API.

ComfyUI is not on PyPI; a source snapshot of 0.3.64 is at ``../shared/comfyui`` with
``../shared/comfyui-support`` (a torchvision stand-in and the pins it starts with). The server
runs in its own virtual environment, ``.venv-comfyui`` (``make comfyui-venv``, which ``make
test`` builds before pytest), on 127.0.0.1 and a free port, with a fresh base directory whose
``custom_nodes/colorquant`` links to ``integrations/comfyui``; it is stopped by its process id
when the test ends. Skipped only where the snapshot is absent (``COLORQUANT_SHARED`` names
another folder than ``../shared``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import make_photo_like
from test_comfyui import PACK, api_prompt

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COLORQUANT_SHARED", ROOT.parent / "shared"))
COMFYUI = SHARED / "comfyui"
SUPPORT = SHARED / "comfyui-support"
VENV_PYTHON = ROOT / ".venv-comfyui" / "bin" / "python"
WORKFLOW = PACK / "example_workflows" / "colorquant_palettes.json"
START_TIMEOUT_S = 240  # imports torch and every core node on a busy 2-core machine
RUN_TIMEOUT_S = 240

pytestmark = [
    pytest.mark.skipif(
        not (COMFYUI / "main.py").is_file(),
        reason=f"no ComfyUI snapshot at {COMFYUI} (set COLORQUANT_SHARED to the folder holding it)",
    ),
    pytest.mark.slow,
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            data: bytes = response.read()
            return data

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def post_json(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise AssertionError(f"POST {path}: {err.code} {err.read().decode()}") from None

    def upload(self, name: str, data: bytes) -> Any:
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        )
        body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            self.url + "/upload/image",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


@contextlib.contextmanager
def comfyui(base: Path) -> Iterator[Server]:
    """ComfyUI serving on 127.0.0.1 with the pack under ``base/custom_nodes``; stopped after."""
    subprocess.run(
        ["make", "-s", "comfyui-venv", f"SHARED={SHARED}"],
        cwd=ROOT,
        check=True,
        timeout=900,
    )
    assert VENV_PYTHON.is_file(), f"make comfyui-venv did not create {VENV_PYTHON}"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "colorquant").symlink_to(PACK, target_is_directory=True)
    (base / "fe").mkdir()
    (base / "fe" / "index.html").write_text("<html></html>")
    port = _free_port()
    log = base / "comfyui.log"
    env = {**os.environ, "PYTHONPATH": str(SUPPORT)}
    command = [
        str(VENV_PYTHON),
        str(COMFYUI / "main.py"),
        "--cpu",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--base-directory",
        str(base),
        "--front-end-root",
        str(base / "fe"),
        "--database-url",
        "sqlite:///:memory:",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(port)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"ComfyUI exited with {process.returncode}:\n{_log_tail(log)}")
            with contextlib.suppress(OSError):
                if "ColorQuantQuantize" in server.get_json("/object_info/ColorQuantQuantize"):
                    break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"ComfyUI did not start in {START_TIMEOUT_S} s:\n{_log_tail(log)}"
                )
            time.sleep(1.0)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def test_the_example_workflow_runs_in_comfyui(tmp_path: Path) -> None:
    with comfyui(tmp_path / "base") as server:
        # ComfyUI lists the pack's example workflow as a template and serves it.
        assert server.get_json("/workflow_templates")["colorquant"] == [WORKFLOW.stem]
        workflow = server.get_json(f"/api/workflow_templates/colorquant/{WORKFLOW.name}")
        assert workflow == json.loads(WORKFLOW.read_text())
        info = server.get_json("/object_info")
        pack_ids = {k for k, v in info.items() if v.get("python_module", "").endswith("colorquant")}
        assert {
            "ColorQuantQuantize",
            "ColorQuantPaletteFromHex",
            "ColorQuantPaletteFromFile",
            "ColorQuantPaletteFromImage",
            "ColorQuantApplyPalette",
            "ColorQuantPalettePreview",
            "ColorQuantSave",
        } <= pack_ids
        # The picture the workflow's LoadImage names, with a transparent corner.
        rgba = np.dstack([make_photo_like(48, 64), np.full((48, 64), 255, np.uint8)])
        rgba[:12, :16, 3] = 0
        buffer = io.BytesIO()
        Image.fromarray(rgba).save(buffer, format="PNG")
        assert server.upload("example.png", buffer.getvalue())["name"] == "example.png"

        prompt = api_prompt(workflow, info)
        queued = server.post_json(
            "/prompt",
            {
                "prompt": prompt,
                "client_id": "colorquant-test",
                "extra_data": {"extra_pnginfo": {"workflow": workflow}},
            },
        )
        assert not queued.get("node_errors"), queued
        prompt_id = queued["prompt_id"]
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            history = server.get_json(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id]["status"].get("completed"):
                break
            entry = history.get(prompt_id, {})
            if entry.get("status", {}).get("status_str") == "error":
                raise AssertionError(json.dumps(entry["status"], indent=1)[-3000:])
            assert time.monotonic() < deadline, f"the workflow did not finish: {history}"
            time.sleep(0.5)
        outputs = history[prompt_id]["outputs"]

        pico8 = {
            tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))
            for c in workflow["nodes"][3]["widgets_values"][0].split()
        }
        saved = {}
        for node_id in ("3", "6"):  # the two ColorQuantSave nodes
            (entry,) = outputs[node_id]["images"]
            assert entry["type"] == "output" and entry["subfolder"] == "ColorQuant"
            query = urllib.parse.urlencode(entry)
            with Image.open(io.BytesIO(server.get(f"/view?{query}"))) as im:
                im.load()
                assert im.format == "PNG" and im.mode == "P"  # a real palette PNG
                # The prompt as ComfyUI ran it (it adds each node's is_changed value).
                ran = json.loads(im.text["prompt"])
                assert {k: {**v, "is_changed": None} for k, v in ran.items()} == {
                    k: {**v, "is_changed": None} for k, v in prompt.items()
                }
                assert json.loads(im.text["workflow"]) == workflow
                saved[node_id] = np.asarray(im.convert("RGBA"))
    quantized = saved["3"]
    colors = np.unique(quantized.reshape(-1, 4), axis=0)
    assert len(colors) <= 16 + 1  # the workflow's 16 colors (+ the clear entry)
    assert (quantized[:12, :16, 3] == 0).all() and (quantized[12:, :, 3] == 255).all()
    mapped = {tuple(c) for c in np.unique(saved["6"][..., :3].reshape(-1, 3), axis=0).tolist()}
    assert mapped <= pico8 and len(mapped) > 2
