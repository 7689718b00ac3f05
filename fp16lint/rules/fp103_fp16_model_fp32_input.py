"""FP103 fp16-model-fp32-input: a float16 model called with a tensor that is still float32."""

from __future__ import annotations

import libcst as cst

from fp16lint.analysis.autocast import AutocastTracker
from fp16lint.analysis.casts import cast_of, constructor_of, short_code
from fp16lint.analysis.dtypes import DType, tensor_dtype, when_maybe
from fp16lint.analysis.receivers import ReceiverTracker, is_nn_class, is_torchvision_model
from fp16lint.analysis.training import Fp16Model, TrainingTracker
from fp16lint.analysis.tree import walk
from fp16lint.findings import Severity
from fp16lint.rules.base import Invalid, Rule

# Models that take their input as is (no cast inside): the first layer sees the fp32 tensor.
_PLAIN_FACTORIES = frozenset({"timm.create_model", "timm.models.create_model"})
_NOT_FLOAT_INPUT = frozenset({"torch.nn.Embedding", "torch.nn.EmbeddingBag"})


class Fp16ModelFp32Input(Rule):
    code = "FP103"
    name = "fp16-model-fp32-input"
    severity = Severity.WARNING
    tokens = ("half", "float16", "fp16", "HalfTensor")
    requires = (ReceiverTracker, AutocastTracker, TrainingTracker)

    summary = "A model cast to float16 is called with a float32 tensor: a dtype mismatch error."
    what = (
        "Finds a call of a model that the same function cast to float16 (not under autocast), "
        "with an argument the function shows is float32: a factory without `dtype=` "
        "(`torch.randn(...)`, `torch.zeros(...)`, `torch.tensor([0.5])`), `.float()`, or such "
        "a tensor only moved to a device (`.to(device)`, `.cuda()`), or a sample drawn from a "
        "`DataLoader` whose dataset the code shows is float32 (`TensorDataset(torch.randn(...), "
        "labels)`, a float32 tensor as the dataset; not with a `collate_fn`). Only models that feed "
        "their input straight to their first layer are checked: `torch.nn` layers, "
        "torchvision and timm models, and this file's own modules that cast nothing inside."
    )
    why = (
        "Pure-fp16 layers refuse float32 inputs: a convolution raises `Input type (float) and "
        "bias type (c10::Half) should be the same`, a linear layer `mat1 and mat2 must have "
        "the same dtype, but got Float and Half`. Under `torch.autocast` the same call works, "
        "because autocast casts the inputs of those ops; so does a model that converts its own "
        "input, which is why Hugging Face models (they cast `pixel_values` themselves) and "
        "models whose code is not in view are not checked."
    )
    example = """\
model = resnet50().cuda().half()
images = torch.randn(8, 3, 224, 224, device="cuda")
logits = model(images)
"""
    use_instead = """\
model = resnet50().cuda()
images = torch.randn(8, 3, 224, 224, device="cuda")
with torch.autocast(device_type="cuda", dtype=torch.float16):
    logits = model(images)
"""
    references = ("https://pytorch.org/docs/stable/amp.html",)
    runtime_confirmable = "yes: the call raises"

    valid = (
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(4, 4).half()\n"
        "x = torch.randn(2, 4).half()\ny = model(x)\nz = model(torch.randn(2, 4, dtype=torch.float16))\n",
        # Under autocast the input is cast.
        "import torch\nimport torch.nn as nn\nmodel = nn.Linear(4, 4).half()\n"
        "with torch.autocast('cuda'):\n    y = model(torch.randn(2, 4))\n",
        # bf16 model, fp32 input: another rule's business; and a model upcast again.
        "import torch\nimport torch.nn as nn\nm = nn.Linear(4, 4).to(torch.bfloat16)\n"
        "n = nn.Linear(4, 4).half()\nn.float()\ny = n(torch.randn(2, 4))\n",
        # Unknown input dtype.
        "import torch\nimport torch.nn as nn\n\ndef f(x, dtype):\n    m = nn.Linear(4, 4).half()\n"
        "    a = m(x)\n    return m(torch.randn(2, 4).to(dtype))\n",
        # A model that casts its own input.
        "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 4)\n\n"
        "    def forward(self, x):\n        return self.fc(x.to(self.fc.weight.dtype))\n\n"
        "net = Net().half()\nout = net(torch.randn(2, 4))\n",
        # A Hugging Face model converts pixel_values itself.
        "import torch\nfrom transformers import CLIPVisionModel\n"
        "m = CLIPVisionModel.from_pretrained('x').half()\nout = m(pixel_values=torch.randn(1, 3, 224, 224))\n",
        # Loader samples: a dataset of fp16 tensors; fp32 samples cast before the call.
        """\
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

def evaluate(labels):
    model = nn.Linear(16, 2).cuda().half()
    loader = DataLoader(TensorDataset(torch.randn(64, 16).half(), labels), batch_size=8)
    for x, y in loader:
        model(x.cuda())
    fp32 = DataLoader(TensorDataset(torch.randn(64, 16), labels), batch_size=8)
    for x, y in fp32:
        model(x.half())
        x = x.to("cuda", torch.float16)
        model(x)
""",
        # Under autocast; a dataset whose dtype the file does not show; a collate_fn.
        """\
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from mydata import ImageFolderDataset

def evaluate(collate):
    model = nn.Conv2d(3, 8, 3).cuda().half()
    for images, labels in DataLoader(TensorDataset(torch.rand(8, 3, 32, 32), torch.zeros(8))):
        with torch.autocast("cuda"):
            model(images.cuda())
    for images, labels in DataLoader(ImageFolderDataset("data/"), batch_size=4):
        model(images.cuda())
    data = TensorDataset(torch.rand(8, 3, 32, 32), torch.zeros(8))
    for images, labels in DataLoader(data, collate_fn=collate):
        model(images.cuda())
""",
    )
    invalid = (
        Invalid(
            "import torch\nimport torch.nn as nn\nmodel = nn.Conv2d(3, 8, 3).cuda().half()\n"
            "images = torch.randn(1, 3, 32, 32)\nimages = images.cuda()\nout = model(images)\n",
            (("FP103", 6),),
        ),
        # Alias, chained cast on a torchvision model, multi-line call.
        Invalid(
            "import torch as th\nfrom torchvision.models import resnet18\n\ndef infer(device):\n"
            "    net = resnet18()\n    net.to(device, th.float16)\n"
            "    x = th.rand(4, 3, 64, 64).to(device)\n    return net(\n        x,\n    )\n",
            (("FP103", 8),),
        ),
        # A local module with no cast inside, called with float32 data; .float() input.
        Invalid(
            "import torch\nimport torch.nn as nn\n\nclass Head(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 2)\n\n"
            "    def forward(self, x):\n        return self.fc(x)\n\n"
            "head = Head()\nhead.half()\nfeatures = torch.ones(3, 4, dtype=torch.float16)\n"
            "logits = head(features.float())\n",
            (("FP103", 15),),
        ),
        # May-be fp16.
        Invalid(
            "import torch\nimport timm\n\ndef run(args):\n"
            "    dtype = torch.float16 if args.fp16 else torch.float32\n"
            "    model = timm.create_model('resnet50').to(dtype=dtype)\n"
            "    return model(torch.zeros(1, 3, 224, 224))\n",
            (("FP103", 7),),
        ),
        # A sample of a TensorDataset of float32 tensors, moved to the GPU.
        Invalid(
            """\
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

def evaluate():
    model = nn.Linear(16, 2).cuda().half()
    data = TensorDataset(torch.randn(256, 16), torch.randint(0, 2, (256,)))
    loader = DataLoader(data, batch_size=32)
    for i, (x, y) in enumerate(loader):
        x = x.cuda(non_blocking=True)
        logits = model(x)
""",
            (("FP103", 11),),
        ),
        # A float32 tensor as the dataset itself, through tqdm; module level.
        Invalid(
            """\
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

device = torch.device("cuda")
net = nn.Conv2d(3, 8, 3).to(device, torch.float16)
images = torch.rand(64, 3, 32, 32)
for batch in tqdm(DataLoader(images, batch_size=8, shuffle=True)):
    out = net(batch.to(device))
""",
            (("FP103", 10),),
        ),
    )

    def visit_Call(self, node: cst.Call) -> None:
        training = self.ctx.get(TrainingTracker)
        func = node.func
        if type(func) is cst.Attribute and func.attr.value == "forward":
            func = func.value
        if type(func) not in (cst.Name, cst.Attribute) or cast_of(node, self.ctx.names):
            return
        model = training.model(func)
        if model is None or model.how != "cast":
            return
        region = self.ctx.get(AutocastTracker).current
        if region is not None and region.enabled is not False:
            return
        if not self._takes_input_as_is(func):
            return
        for arg in node.args:
            fact = tensor_dtype(arg.value, self.ctx.names)
            if fact is not None and fact.dtype is DType.FP32 and not fact.maybe:
                self._report(node, model, arg.value)
                return

    def _report(self, node: cst.Call, model: Fp16Model, value: cst.BaseExpression) -> None:
        line = self._line(model.node)
        self.report(
            node,
            f"`{model.key or short_code(self.ctx, node.func)}` is float16"
            f"{when_maybe(model.dtype)} ({line}) but its input `{short_code(self.ctx, value)}` "
            "is float32: a dtype mismatch error.",
            related=[(self.ctx.path, model.node, "the cast")],
            help="Convert the input to the model's dtype, or keep the model in float32 and run "
            "it under `torch.autocast` (the error: `mat1 and mat2 must have the same dtype`).",
        )

    def _line(self, node: cst.CSTNode) -> str:
        return f"at `{short_code(self.ctx, node, 40)}`"

    def _takes_input_as_is(self, func: cst.BaseExpression) -> bool:
        qualname = constructor_of(func, self.ctx)
        if qualname is None or qualname in _NOT_FLOAT_INPUT:
            return False
        if is_nn_class(qualname) or is_torchvision_model(qualname) or qualname in _PLAIN_FACTORIES:
            return True
        prefix = f"{self.ctx.module_name}." if self.ctx.module_name else ""
        if not qualname.startswith(prefix):
            return False
        local = qualname[len(prefix) :]
        for statement in self.ctx.module.body:
            if type(statement) is cst.ClassDef and statement.name.value == local:
                return not any(
                    type(n) is cst.Call and cast_of(n, self.ctx.names) is not None
                    for n in walk(statement)
                )
        return False
