"""The models and how they are trained and run (method guide §1 and §5).

    resnet        ResNet-18, the source model M_S (and the fine-tuned target); ResNet-50
    pretrained    torchvision/timm weights into a source work directory, exactly
    simclr        SimCLR on a pool's images without labels: NT-Xent, the train step
    augment       SimCLR's augmentations, jitted, one key per example
    ssl_source    a SimCLR encoder as a source work directory (features only)
    vit           Vision Transformers: DINOv2, SigLIP's image and text towers
    hf_vit        Hugging Face DINOv2 / SigLIP checkpoints into them, exactly
    foundation    such an encoder as a source work directory; text embeddings
    text_tokenizer  SigLIP's tokenizers (SentencePiece, Gemma's) without transformers
    strided_conv  stride-2 convolutions whose input gradient runs by phases on CPU
    train         optax training under `pmap`: steps, schedules, `fit`
    inference     features and probabilities of a pool, batch by batch
    checkpoint    orbax snapshots with verified manifests (+ens)
    source        M_S: train on the source data, load a train_source run, outputs
    target        the target models: linear SVM on M_S's features, fine-tuning
    distributed   multi-host runs through `jax.distributed`

The ResNet is re-exported here: `from jaxal.models import ResNet18`.
Models import the method's base (`jaxal.io`, `jaxal._validation`) and the
datasets' pipelines, never the experiments or the command.
"""

from jaxal.models.resnet import (ARCHS, STEMS, BasicBlock, BottleneckBlock, ResNet,
                                 ResNet18, ResNet50, num_params)

__all__ = ["ARCHS", "STEMS", "BasicBlock", "BottleneckBlock", "ResNet", "ResNet18",
           "ResNet50", "num_params"]
