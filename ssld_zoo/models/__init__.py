"""Zoo architectures, registered with timm on import.

`_stock` registers zoo names whose weights fit a stock timm architecture; the family files register the
Paddle-faithful architectures timm lacks. Importing this package is what `import ssld_zoo` arranges once timm loads.
"""
from ssld_zoo.models import (_stock, hgnetv2, hrnet_se, lcnet, mobilenetv2, mobilenetv3,  # noqa: F401
                             res2net_vd, resnet_cifar, resnet_vd)
