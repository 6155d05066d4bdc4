"""Peak memory of one fp32 PyTorch training step (batch 1) of a tte model's architecture.

Run as a fresh process (``python benchmarks/torch_step.py MODEL``, full update); prints JSON:
whole-process peak (VmHWM, imports included), growth of the peak during the first step (peak reset
through /proc/self/clear_refs just before it), and the analytic size of the step's tensors
(parameters + gradients + saved activations, counted by autograd's saved-tensor hooks).
"""

from __future__ import annotations

import json
import sys


def status(key: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def main() -> None:
    import torch
    from torch_float import FloatModel

    import tte

    torch.set_num_threads(1)
    path = sys.argv[1]
    program = tte.compile(path, scheme="full", classes=10, optimize=False)
    model = FloatModel(program.forward)
    x = torch.zeros(program.forward[program.forward.inputs[0]].shape)
    y = torch.tensor([1])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    rss_before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    params = sum(p.numel() * 4 for p in model.parameters())
    print(json.dumps({
        "process_peak_bytes": status("VmHWM"),
        "step_growth_bytes": status("VmHWM") - rss_before,
        "tensor_bytes": params * 2 + sum(saved),
    }))


if __name__ == "__main__":
    main()
