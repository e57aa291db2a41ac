"""Pixel statistics shared by the image pipelines (data) and the networks (models).

The ImageNet mean and standard deviation that torchvision's pretrained backbones expect; the
style adapters (ISA) map images back and forth through them (``model.isa_space``).
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
