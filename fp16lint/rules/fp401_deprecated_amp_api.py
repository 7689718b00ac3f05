"""FP401 deprecated-amp-api: ``torch.cuda.amp.*`` / ``torch.cpu.amp.*`` → ``torch.amp.*``."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from fp16lint.analysis.context import NodeEdit
from fp16lint.analysis.guards import in_compat_fallback
from fp16lint.analysis.names import dotted
from fp16lint.data.deprecated_amp import DEPRECATED, DEPRECATED_MODULES, Replacement
from fp16lint.findings import Applicability, Severity
from fp16lint.rules.base import Invalid, Rule

_NEW_AMP_NAMES = frozenset({"autocast", "GradScaler", "custom_fwd", "custom_bwd"})


@dataclass
class _ImportGroup:
    """A ``from torch.cuda.amp import ...`` (or ``from torch.cuda import amp``) line and the
    uses of the names it binds. The import and its uses can only be fixed together."""

    node: cst.ImportFrom
    module_edit: NodeEdit
    device: str
    qualnames: dict[str, str]  # local name -> deprecated qualified name
    references: int = 0  # Name nodes in code that refer to one of the local names
    uses: list[tuple[cst.CSTNode, str | None]] = field(default_factory=list)  # node, new text


def _message(old: str, rep: Replacement) -> str:
    new = rep.new
    if rep.kind == "decorator":
        call = f'`{new}(device_type="{rep.device}")`'
    else:
        call = f'`{new}("{rep.device}", ...)`'
    return f"`{old}` is deprecated (FutureWarning since torch 2.4) and will be removed; use {call}."


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
        "with them."
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
        # Conditional expressions on a version flag, imported or bound to a version test.
        "import torch\nfrom .compat import TORCH_GE_2_4\n"
        "scaler = torch.amp.GradScaler('cuda') if TORCH_GE_2_4 else torch.cuda.amp.GradScaler()\n",
        "import torch\nfrom packaging import version\n"
        "NEW_AMP = version.parse(torch.__version__).release >= (2, 4)\n"
        "ctx = torch.amp.autocast('cuda') if NEW_AMP else torch.cuda.amp.autocast()\n",
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
        if in_compat_fallback(self.ctx.stack, self.ctx.names):
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
        group = _ImportGroup(node, edit, device, qualnames)
        if not fixable:
            group.references = -1  # never equal to the number of fixed uses
        for local in qualnames:
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
        if in_compat_fallback(self.ctx.stack, self.ctx.names):
            return
        message = _message(old, rep)
        group = self._group_of(func)
        if group is not None:
            new_text = self._rewrite(node, self.ctx.code(func), rep, is_call)
            group.uses.append((node, new_text))
            self.report(node, f"{message} The fix comes with its import's.")
            return
        new_func = self._new_func_text(func, rep)
        new_text = self._rewrite(node, new_func, rep, is_call) if new_func else None
        edits = [NodeEdit(node, new_text)] if new_text is not None else []
        self.report(node, message, edits=edits, fix_message=f"Use `{rep.new}`")

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

    def _rewrite(
        self, node: cst.CSTNode, func_text: str, rep: Replacement, is_call: bool
    ) -> str | None:
        """The replacement text for a deprecated call or bare decorator, or None if unsafe."""
        func = cst.parse_expression(func_text)
        if rep.kind == "decorator":
            device_kw = cst.Arg(
                cst.SimpleString(f'"{rep.device}"'),
                keyword=cst.Name("device_type"),
                equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
            )
            args = [*node.args, device_kw] if is_call else [device_kw]
            call = node.with_changes(func=func, args=args) if is_call else cst.Call(func, args)
            return self.ctx.module.code_for_node(call)
        assert type(node) is cst.Call
        args: list[cst.Arg] = []
        position = 0
        for arg in node.args:
            if arg.star == "*":
                return None
            if arg.keyword is None and not arg.star and rep.kind == "autocast":
                if position >= len(rep.old_positional):
                    return None
                arg = arg.with_changes(
                    keyword=cst.Name(rep.old_positional[position]),
                    equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
                )
                position += 1
            args.append(arg)
        device = cst.Arg(cst.SimpleString(f'"{rep.device}"'))
        return self.ctx.module.code_for_node(node.with_changes(func=func, args=[device, *args]))

    # --- imports are reported last, once all their uses are known --------------------------
    def leave_Module(self, node: cst.Module) -> None:
        seen: set[int] = set()
        for group in self.groups.values():
            if id(group) in seen:
                continue
            seen.add(id(group))
            self._report_import(group)

    def _report_import(self, group: _ImportGroup) -> None:
        old = dotted(group.node.module)
        fixable = group.references == len(group.uses) and all(t is not None for _, t in group.uses)
        if not group.uses:
            # An import with no call here (a re-export): only GradScaler keeps its meaning,
            # since torch.amp.GradScaler's device defaults to "cuda".
            fixable = group.device == "cuda" and set(group.qualnames.values()) == {
                f"{old}.GradScaler"
            }
        edits = [group.module_edit, *(NodeEdit(n, t) for n, t in group.uses)] if fixable else []
        hint = "" if fixable else " (some uses cannot be rewritten automatically)"
        self.report(
            group.node.module,
            f"`{old}` is deprecated (FutureWarning since torch 2.4); import from `torch.amp` "
            f'and pass the device ("{group.device}") to each call{hint}.',
            edits=edits,
            fix_message="Import from `torch.amp` and pass the device",
        )
