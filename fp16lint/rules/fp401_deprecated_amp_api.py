"""FP401 deprecated-amp-api: ``torch.cuda.amp.*`` / ``torch.cpu.amp.*`` → ``torch.amp.*``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import libcst as cst

from fp16lint.analysis.context import NodeEdit, Project
from fp16lint.analysis.guards import in_compat_fallback
from fp16lint.analysis.names import dotted
from fp16lint.analysis.requirements import lowest_version
from fp16lint.data.deprecated_amp import DEPRECATED, DEPRECATED_MODULES, Replacement
from fp16lint.findings import Applicability, Finding, Severity
from fp16lint.rules.base import Invalid, Rule

# Per file: the torch each fix needs, by the finding's span (see ``amend``).
_NEEDS_FACT = "fp401_needs"
_NEW_AMP_NAMES = frozenset({"autocast", "GradScaler", "custom_fwd", "custom_bwd"})


@dataclass
class _ImportGroup:
    """A ``from torch.cuda.amp import ...`` (or ``from torch.cuda import amp``, or
    ``import torch.cuda.amp as amp``) line and the uses of the names it binds. The import and
    its uses can only be fixed together."""

    module: cst.BaseExpression  # the imported module's name, where the import is reported
    module_edit: NodeEdit
    device: str
    qualnames: dict[str, str]  # local name -> deprecated qualified name
    references: int = 0  # Name nodes in code that refer to one of the local names
    # each use and its edits (None: it cannot be rewritten)
    uses: list[tuple[cst.CSTNode, list[NodeEdit] | None]] = field(default_factory=list)
    since: tuple[int, int] = (2, 3)  # the torch the rewritten uses need


def _message(old: str, rep: Replacement) -> tuple[str, str]:
    """The message and the help of a deprecated call."""
    new = rep.new
    if rep.kind == "decorator":
        call = f'`{new}(device_type="{rep.device}")`'
    else:
        call = f'`{new}("{rep.device}", ...)`'
    return (
        f"`{old}` is deprecated (FutureWarning since torch 2.4) and will be removed.",
        f"Use {call}.",
    )


class DeprecatedAmpApi(Rule):
    code = "FP401"
    name = "deprecated-amp-api"
    severity = Severity.WARNING
    runtime_confirmable = "no"
    fix = Applicability.SAFE
    tokens = ("amp",)

    summary = "Deprecated `torch.cuda.amp` / `torch.cpu.amp` API; use `torch.amp` with a device."
    what = (
        "Finds calls, decorators and imports of `torch.cuda.amp.autocast`, "
        "`torch.cuda.amp.GradScaler`, `torch.cpu.amp.autocast`, `torch.cpu.amp.GradScaler` and "
        "`torch.cuda.amp.custom_fwd`/`custom_bwd`, in every spelling (`import torch as th`, "
        "`from torch.cuda.amp import autocast`, `from torch.cuda import amp`)."
    )
    why = (
        "These entry points emit a `FutureWarning` since torch 2.4 and are slated for removal; "
        "`torch.amp` takes the device explicitly, which is also what makes CPU and CUDA "
        "mixed precision look the same in code. Code that still needs the old API on old "
        "torch (a `try/except (ImportError, AttributeError)`, a `hasattr` or version check) "
        "is left alone."
    )
    example = """\
from torch.cuda.amp import GradScaler, autocast

scaler = GradScaler()
with autocast(dtype=torch.float16):
    loss = model(x)
"""
    use_instead = """\
from torch.amp import GradScaler, autocast

scaler = GradScaler("cuda")
with autocast("cuda", dtype=torch.float16):
    loss = model(x)
"""
    fix_docs = (
        "Safe: rewrites the call to the `torch.amp` form with the device as first argument "
        "(old positional `autocast` arguments become keywords, since the new signature puts "
        "`dtype` second), decorators gain `device_type=`, and `from torch.cuda.amp import` "
        "lines become `from torch.amp import` when every use of the imported names is fixed "
        "with them. Only the function's name changes and the new arguments are inserted: "
        "on the line of the first argument, or on a line of their own with the same "
        "indentation when each argument has its own line; the rest of the call is left as "
        "written.\n\n"
        '`torch.amp.GradScaler("cuda")` exists since torch 2.3 and '
        "`torch.amp.custom_fwd(device_type=...)` since 2.4. When the project's requirements "
        "(`pyproject.toml`, `requirements*.txt`, `setup.cfg` or `setup.py` in the project "
        "root) admit an older torch (`torch>=1.8`), the finding keeps no fix and its message "
        "says which torch the replacement needs; a project that does not bound torch gets "
        "the fix."
    )
    references = ("https://pytorch.org/docs/stable/amp.html",)

    valid = (
        "import torch\nwith torch.amp.autocast('cuda', dtype=torch.float16):\n    pass\n",
        "from torch.amp import GradScaler\nscaler = GradScaler('cuda')\n",
        # Deliberate fallback for old torch: quiet.
        "import torch\ntry:\n    scaler = torch.amp.GradScaler('cuda')\n"
        "except (AttributeError, TypeError):\n    scaler = torch.cuda.amp.GradScaler()\n",
        "try:\n    from torch.amp import GradScaler\nexcept ImportError:\n"
        "    from torch.cuda.amp import GradScaler\n",
        "import torch\nif is_torch_version('>=', '2.4'):\n    from torch.amp import GradScaler\n"
        "else:\n    from torch.cuda.amp import GradScaler\n",
        "import torch\nif hasattr(torch.amp, 'GradScaler'):\n    s = torch.amp.GradScaler('cuda')\n"
        "else:\n    s = torch.cuda.amp.GradScaler()\n",
        # A reference (not a call) to the old class, e.g. in an isinstance check: quiet.
        "import torch\nOLD = (torch.cuda.amp.autocast, torch.cpu.amp.autocast)\n",
        # Not torch: a local `amp` object.
        "import apex\namp = apex.amp\nmodel = amp.initialize(model)\n",
        # Text in a string is not code.
        "doc = 'use torch.cuda.amp.autocast()'\n",
    )
    invalid = (
        Invalid(
            "import torch\nwith torch.cuda.amp.autocast():\n    pass\n",
            (("FP401", 2),),
            fixed='import torch\nwith torch.amp.autocast("cuda"):\n    pass\n',
        ),
        Invalid(
            "import torch as th\nscaler = th.cuda.amp.GradScaler(init_scale=1024)\n",
            (("FP401", 2),),
            fixed='import torch as th\nscaler = th.amp.GradScaler("cuda", init_scale=1024)\n',
        ),
        Invalid(
            "import torch\nwith torch.cpu.amp.autocast(True, torch.bfloat16):\n    pass\n",
            (("FP401", 2),),
            fixed='import torch\nwith torch.amp.autocast("cpu", enabled=True, dtype=torch.bfloat16):'
            "\n    pass\n",
        ),
        Invalid(
            "from torch.cuda.amp import GradScaler, autocast\n\nscaler = GradScaler()\n"
            "with autocast(dtype=torch.float16):\n    pass\n",
            (("FP401", 1), ("FP401", 3), ("FP401", 4)),
            fixed='from torch.amp import GradScaler, autocast\n\nscaler = GradScaler("cuda")\n'
            'with autocast("cuda", dtype=torch.float16):\n    pass\n',
        ),
        Invalid(
            "from torch.cuda import amp\nscaler = amp.GradScaler()\n",
            (("FP401", 1), ("FP401", 2)),
            fixed='from torch import amp\nscaler = amp.GradScaler("cuda")\n',
        ),
        Invalid(
            "import torch\n\nclass F(torch.autograd.Function):\n    @staticmethod\n"
            "    @torch.cuda.amp.custom_fwd(cast_inputs=torch.float32)\n    def forward(ctx, x):\n"
            "        return x\n\n    @staticmethod\n    @torch.cuda.amp.custom_bwd\n"
            "    def backward(ctx, g):\n        return g\n",
            (("FP401", 5), ("FP401", 10)),
            fixed="import torch\n\nclass F(torch.autograd.Function):\n    @staticmethod\n"
            '    @torch.amp.custom_fwd(cast_inputs=torch.float32, device_type="cuda")\n'
            "    def forward(ctx, x):\n        return x\n\n    @staticmethod\n"
            '    @torch.amp.custom_bwd(device_type="cuda")\n    def backward(ctx, g):\n'
            "        return g\n",
        ),
        Invalid(
            "import torch\n\n@torch.cuda.amp.autocast()\ndef forward(x):\n    return x\n",
            (("FP401", 3),),
            fixed='import torch\n\n@torch.amp.autocast("cuda")\ndef forward(x):\n    return x\n',
        ),
        # A non-call use of the imported name: reported, but the import is not rewritten.
        Invalid(
            "from torch.cuda.amp import autocast\nctx = autocast\nwith autocast():\n    pass\n",
            (("FP401", 1), ("FP401", 3)),
        ),
        # A module alias: the import and every use, together.
        Invalid(
            "import torch.cuda.amp as amp\nscaler = amp.GradScaler()\n"
            "with amp.autocast(enabled=True):\n    pass\n",
            (("FP401", 1), ("FP401", 2), ("FP401", 3)),
            fixed='import torch.amp as amp\nscaler = amp.GradScaler("cuda")\n'
            'with amp.autocast("cuda", enabled=True):\n    pass\n',
        ),
        Invalid(
            "def train():\n    from torch.cuda.amp import GradScaler as GS\n    return GS()\n",
            (("FP401", 2), ("FP401", 3)),
            fixed="def train():\n    from torch.amp import GradScaler as GS\n"
            '    return GS("cuda")\n',
        ),
    )

    def __init__(self, ctx):
        super().__init__(ctx)
        self.groups: dict[str, _ImportGroup] = {}  # keyed by local name

    # --- imports ------------------------------------------------------------------------------
    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or type(node.names) is cst.ImportStar:
            return
        if in_compat_fallback(self.ctx.stack):
            return
        module = dotted(node.module)
        aliases = [(a, a.evaluated_name, a.evaluated_alias or a.evaluated_name) for a in node.names]
        if module in DEPRECATED_MODULES:
            device = DEPRECATED_MODULES[module]
            qualnames = {local: f"{module}.{name}" for _, name, local in aliases}
            fixable = {name for _, name, _ in aliases} <= _NEW_AMP_NAMES
            edit = NodeEdit(node.module, "torch.amp")
        elif module in ("torch.cuda", "torch.cpu") and any(name == "amp" for _, name, _ in aliases):
            device = module.split(".")[1]
            qualnames = {local: f"{module}.amp" for _, name, local in aliases if name == "amp"}
            fixable = len(aliases) == 1
            edit = NodeEdit(node.module, "torch")
        else:
            return
        group = _ImportGroup(node.module, edit, device, qualnames)
        if not fixable:
            group.references = -1  # never equal to the number of fixed uses
        for local in qualnames:
            self.groups[local] = group

    def visit_Import(self, node: cst.Import) -> None:
        """``import torch.cuda.amp as amp``: ``torch.amp`` has the same names."""
        if in_compat_fallback(self.ctx.stack):
            return
        for alias in node.names:
            module = dotted(alias.name)
            if module in DEPRECATED_MODULES and alias.asname is not None:
                local = alias.evaluated_alias
                edit = NodeEdit(alias.name, "torch.amp")
                group = _ImportGroup(alias.name, edit, DEPRECATED_MODULES[module], {local: module})
                self.groups[local] = group

    def visit_Name(self, node: cst.Name) -> None:
        group = self.groups.get(node.value)
        if group is None or not self._is_reference(node):
            return
        if group.references >= 0 and self.ctx.names.qualname(node) == group.qualnames[node.value]:
            group.references += 1

    def _is_reference(self, node: cst.Name) -> bool:
        """A Name that reads a variable (not an import alias, attribute or keyword name)."""
        parent = self.ctx.parent()
        if type(parent) in (cst.ImportAlias, cst.AsName):
            return False
        if type(parent) is cst.Attribute and parent.attr is node:
            return False
        return not (type(parent) is cst.Arg and parent.keyword is node)

    # --- calls and decorators ---------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        self._check(node, node.func, is_call=True)

    def visit_Decorator(self, node: cst.Decorator) -> None:
        if type(node.decorator) is not cst.Call:
            self._check(node.decorator, node.decorator, is_call=False)

    def _check(self, node: cst.CSTNode, func: cst.BaseExpression, *, is_call: bool) -> None:
        old = self.ctx.names.qualname(func)
        rep = DEPRECATED.get(old or "")
        if rep is None or (not is_call and rep.kind != "decorator"):
            return
        if in_compat_fallback(self.ctx.stack):
            return
        message, help_text = _message(old, rep)
        group = self._group_of(func)
        if group is not None:
            group.uses.append((node, self._edits(node, None, rep, is_call)))
            group.since = max(group.since, rep.since)
            help_text += " The import's fix rewrites this call too."
            self.report(node, message, help=help_text)
            return
        new_func = self._new_func_text(func, rep)
        edits = self._edits(node, new_func, rep, is_call) if new_func else None
        self._needs(node, rep.since, rep.new)
        self.report(
            node, message, edits=edits or (), fix_message=f"Use `{rep.new}`", help=help_text
        )

    def _needs(self, node: cst.CSTNode, since: tuple[int, int], api: str) -> None:
        """Note the torch the fix at ``node`` needs; ``amend`` drops it for older projects."""
        self.ctx.facts.setdefault(_NEEDS_FACT, []).append(
            {"span": self.ctx.span_ref(node), "since": list(since), "api": api}
        )

    def _group_of(self, func: cst.BaseExpression) -> _ImportGroup | None:
        base = func
        while type(base) is cst.Attribute:
            base = base.value
        if type(base) is cst.Name and base.value in self.groups:
            return self.groups[base.value]
        return None

    def _new_func_text(self, func: cst.BaseExpression, rep: Replacement) -> str | None:
        """``th.cuda.amp.autocast`` → ``th.amp.autocast``, keeping the file's torch alias."""
        base = func
        while type(base) is cst.Attribute:
            base = base.value
            if self.ctx.names.qualname(base) == "torch":
                return f"{self.ctx.code(base)}.{rep.new.removeprefix('torch.')}"
        return None

    # --- the edits: the function's name and inserted arguments, the rest left as written ----
    def _edits(
        self, node: cst.CSTNode, new_func: str | None, rep: Replacement, is_call: bool
    ) -> list[NodeEdit] | None:
        """Edits that turn a deprecated call or bare decorator into the ``torch.amp`` form
        (``new_func``: the function's new text, None when its import is rewritten instead),
        or None when the call cannot be rewritten safely."""
        if not is_call:  # a bare decorator: one short expression
            func = new_func or self.ctx.code(node)
            return [NodeEdit(node, f'{func}(device_type="{rep.device}")')]
        assert type(node) is cst.Call
        device = f'"{rep.device}"'
        added = f"device_type={device}" if rep.kind == "decorator" else device
        if not node.args:
            return [NodeEdit(node, f"{new_func or self.ctx.code(node.func)}({added})")]
        edits = [NodeEdit(node.func, new_func)] if new_func else []
        if rep.kind == "decorator":
            return edits + self._append(node, added)
        keywords: dict[int, str] = {}
        position = 0
        for index, arg in enumerate(node.args):
            if arg.star == "*":
                return None
            if arg.keyword is None and not arg.star and rep.kind == "autocast":
                if position >= len(rep.old_positional):
                    return None
                keywords[index] = f"{rep.old_positional[position]}="
                position += 1
        first = node.args[0]
        separator = self._separator(node, first)
        edits.append(NodeEdit(first, f"{device},{separator}{keywords.pop(0, '')}", "before"))
        edits += [NodeEdit(node.args[i], text, "before") for i, text in keywords.items()]
        return edits

    def _append(self, node: cst.Call, text: str) -> list[NodeEdit]:
        """Insert the argument ``text`` after the last one, as the others are laid out."""
        last = node.args[-1]
        separator = self._separator(node, node.args[0])
        return [NodeEdit(last.value, f",{separator}{text}", "after")]

    def _separator(self, node: cst.Call, first: cst.Arg) -> str:
        """What goes between two arguments: a space, or a newline and the arguments'
        indentation when each argument has a line of its own."""
        before = node.whitespace_before_args
        after = first.comma.whitespace_after if type(first.comma) is cst.Comma else None
        own_lines = type(before) is cst.ParenthesizedWhitespace and (
            len(node.args) == 1 or type(after) is cst.ParenthesizedWhitespace
        )
        if not own_lines:
            return " "
        assert type(before) is cst.ParenthesizedWhitespace
        indent = self._block_indent() if before.indent else ""
        return self.ctx.module.default_newline + indent + before.last_line.value

    def _block_indent(self) -> str:
        """The indentation of the statement being walked (libcst keeps it per block)."""
        default = self.ctx.module.default_indent
        return "".join(
            (n.indent if n.indent is not None else default)
            for n in self.ctx.stack
            if type(n) is cst.IndentedBlock
        )

    # --- imports are reported last, once all their uses are known --------------------------
    def leave_Module(self, node: cst.Module) -> None:
        seen: set[int] = set()
        for group in self.groups.values():
            if id(group) in seen:
                continue
            seen.add(id(group))
            self._report_import(group)

    def _report_import(self, group: _ImportGroup) -> None:
        old = dotted(group.module)
        fixable = group.references == len(group.uses) and all(e is not None for _, e in group.uses)
        if not group.uses:
            # An import with no call here (a re-export): only GradScaler keeps its meaning,
            # since torch.amp.GradScaler's device defaults to "cuda".
            fixable = group.device == "cuda" and set(group.qualnames.values()) == {
                f"{old}.GradScaler"
            }
        edits = [group.module_edit, *(e for _, use in group.uses for e in use or ())]
        hint = "" if fixable else " (some uses cannot be rewritten automatically)"
        since = max(
            (DEPRECATED[q].since for q in group.qualnames.values() if q in DEPRECATED),
            default=group.since,
        )
        self._needs(group.module, max(since, group.since), "torch.amp")
        deprecated = old if old.endswith(".amp") else f"{old}.amp"  # `from torch.cuda import amp`
        self.report(
            group.module,
            f"`{deprecated}` is deprecated (FutureWarning since torch 2.4) and will be removed.",
            help=f'Import from `torch.amp` and pass the device ("{group.device}") to each '
            f"call{hint}.",
            edits=edits if fixable else (),
            fix_message="Import from `torch.amp` and pass the device",
        )

    # --- the project's declared torch decides whether the fix may be applied ---------------
    @classmethod
    def amend(cls, project: Project, finding: Finding) -> Finding:
        """Drop the fix when the project's requirements admit a torch older than the one the
        replacement needs (read as FP501 reads transformers' pin)."""
        if finding.fix is None:
            return finding
        lowest = project.derived("torch.lowest", lambda p: lowest_version(p.settings.root, "torch"))
        summary = project.summaries.get(finding.path)
        if lowest is None or summary is None:
            return finding
        start = finding.span.start
        for record in summary.facts.get(_NEEDS_FACT, ()):
            since = tuple(record["since"])
            if record["span"][:2] == [start.line, start.column] and lowest < since:
                admitted = ".".join(map(str, lowest))
                needed = ".".join(map(str, since))
                note = (
                    f" Not rewritten: the project's requirements admit torch {admitted}, and "
                    f"`{record['api']}` needs torch {needed} or later."
                )
                return replace(finding, message=finding.message + note, fix=None)
        return finding
