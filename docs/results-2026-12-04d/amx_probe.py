"""Training-step throughput, fp32 vs bf16 autocast, on this CPU (train.train_step, batch 128, 2 threads)."""
import time, torch
from digitlab.config import ModelConfig
from digitlab.models import build_model
from digitlab.train import train_step
torch.set_num_threads(2)
def rate(cfg, autocast, steps=25, batch=128):
    torch.manual_seed(0)
    m = build_model(cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), 1e-3)
    x = torch.rand(batch, 1, 28, 28); y = torch.randint(0, 10, (batch,))
    for _ in range(5): train_step(m, opt, x, y, 0.1, autocast)
    t = time.perf_counter()
    for _ in range(steps): train_step(m, opt, x, y, 0.1, autocast)
    return steps * batch / (time.perf_counter() - t)
for name, cfg in [("reference", ModelConfig()), ("vgg32", ModelConfig(arch="vgg", width=32, dropout=0.1)),
                  ("vgg48", ModelConfig(arch="vgg", width=48, dropout=0.1)), ("vgg64", ModelConfig(arch="vgg", width=64, dropout=0.1))]:
    f, b = rate(cfg, None), rate(cfg, torch.bfloat16)
    print(f"{name:10s} fp32 {f:7.0f} img/s  bf16 {b:7.0f} img/s  ratio {b/f:.2f}", flush=True)
