"""Drive a real headless Neovim with the documented set-up and write what it saw.

    .venv/bin/python scripts/nvim_transcript.py [OUTPUT.md]

Takes the "Neovim 0.7 to 0.9" Lua snippet from docs/editors.md as Neovim's ``init.lua``
(unchanged: ``fp16lint`` is found on PATH, this environment's first), opens a small model
file, and records what the editor shows: the diagnostics, the code actions at a fixable
finding, the buffer after applying its quick fix (an edit), the diagnostics after that edit,
and the hover at a remaining finding. Needs ``nvim`` (Debian 12: ``apt-get install neovim``,
0.7.2) and the ``lsp`` extra.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = """\
import torch

model = torch.nn.Linear(8, 8).cuda().half()
with torch.cuda.amp.autocast():
    y = model(torch.randn(2, 8, device="cuda").half())
"""

DRIVER = r"""
local out = assert(io.open(vim.env.TRANSCRIPT, "w"))
local function log(text) out:write(text, "\n") end
local function code_of(d)
  return d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code) or "?"
end
local function show(title)
  log("### " .. title .. "\n")
  log("```text")
  for _, d in ipairs(vim.diagnostic.get(0)) do
    log(string.format("%d:%d %s %s: %s", d.lnum + 1, d.col + 1, d.source or "", code_of(d), d.message))
  end
  log("```\n")
end
local function wait_diagnostics(changed_from)
  return vim.wait(30000, function()
    local now = vim.diagnostic.get(0)
    return #now > 0 and (changed_from == nil or #now ~= changed_from)
  end, 50)
end

log("Neovim: " .. vim.version().major .. "." .. vim.version().minor .. "." .. vim.version().patch)
assert(wait_diagnostics(nil), "no diagnostics within 30 s")
local names = {}
for _, client in pairs(vim.lsp.buf_get_clients(0)) do table.insert(names, client.name) end
log("Language servers attached to the buffer: " .. table.concat(names, ", ") .. "\n")
show("1. Diagnostics on open")
local before = #vim.diagnostic.get(0)

local target
for _, d in ipairs(vim.diagnostic.get(0)) do
  if code_of(d) == "FP401" then target = d end
end
local lsp_diags = vim.lsp.diagnostic.get_line_diagnostics(0, target.lnum)
local params = {
  textDocument = { uri = vim.uri_from_bufnr(0) },
  range = { start = { line = target.lnum, character = target.col },
            ["end"] = { line = target.end_lnum, character = target.end_col } },
  context = { diagnostics = lsp_diags },
}
local answers = vim.lsp.buf_request_sync(0, "textDocument/codeAction", params, 10000)
log("### 2. Code actions at " .. (target.lnum + 1) .. ":" .. (target.col + 1) .. " (FP401)\n")
log("```text")
local chosen
for _, answer in pairs(answers or {}) do
  for _, action in ipairs(answer.result or {}) do
    log(action.title .. "  [" .. (action.kind or "") .. "]")
    if chosen == nil and action.edit and action.title:find("Use `torch.amp", 1, true) then
      chosen = action
    end
  end
end
log("```\n")
assert(chosen, "no quick fix offered")
vim.lsp.util.apply_workspace_edit(chosen.edit, "utf-16")
log("### 3. Applied \"" .. chosen.title .. "\": the buffer now\n")
log("```python")
for _, line in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do log(line) end
log("```\n")
assert(wait_diagnostics(before), "diagnostics did not follow the edit")
show("4. Diagnostics after the edit (unsaved buffer)")

local first = vim.diagnostic.get(0)[1]
local hover = vim.lsp.buf_request_sync(0, "textDocument/hover", {
  textDocument = { uri = vim.uri_from_bufnr(0) },
  position = { line = first.lnum, character = first.col },
}, 10000)
log("### 5. Hover at " .. (first.lnum + 1) .. ":" .. (first.col + 1) .. "\n")
log("```markdown")
for _, answer in pairs(hover or {}) do
  if answer.result then log(answer.result.contents.value) end
end
log("```")
out:close()
vim.cmd("qa!")
"""


def lua_snippet() -> str:
    text = (REPO / "docs" / "editors.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```lua\n(.*?)^```", text, re.M | re.S)
    (snippet,) = [b for b in blocks if "vim.lsp.start_client" in b]
    return snippet


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs/transcripts/neovim-0.7.md"
    snippet = lua_snippet()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "init.lua").write_text(snippet, encoding="utf-8")
        (work / "driver.lua").write_text(DRIVER, encoding="utf-8")
        (work / "train.py").write_text(SOURCE, encoding="utf-8")
        transcript = work / "transcript.md"
        env = dict(
            os.environ,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            TRANSCRIPT=str(transcript),
            XDG_STATE_HOME=str(work / "state"),
            XDG_DATA_HOME=str(work / "data"),
        )
        command = ["nvim", "--headless", "-u", "init.lua", "-c", "luafile driver.lua", "train.py"]
        subprocess.run(command, cwd=work, env=env, check=True, timeout=120)
        version = subprocess.run(["nvim", "--version"], capture_output=True, text=True)
        body = transcript.read_text(encoding="utf-8")
    header = (
        "# Neovim 0.7 with fp16lint's language server: a transcript\n\n"
        "Made by `scripts/nvim_transcript.py`: a headless `"
        + version.stdout.splitlines()[0]
        + '` with the "Neovim 0.7 to 0.9" snippet of [editors.md](../editors.md) as its '
        "`init.lua`, opening `train.py`:\n\n```python\n" + SOURCE + "```\n\n"
    )
    output.write_text(header + body, encoding="utf-8")
    print(output.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
