"""SSLD training in PyTorch: label-free distillation from a frozen teacher, driven by YAML recipes."""
