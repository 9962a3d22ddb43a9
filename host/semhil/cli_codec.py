"""`semhil train`, `semhil eval` and `semhil inspect`: the codec side of the command line."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from codec_train.codecs import CODECS
from codec_train.train import TrainConfig

from .cli import ber_option, cli, console, parse_bers, pilots_option, progress_bar
from .errors import SemhilError
from .paths import RUNS_DIR

XAI_WEIGHT = TrainConfig.gamma_xai  # gamma of eq. 3 when --xai is on


@cli.command()
@click.option("--preset", type=click.Choice(["demo", "tiny"]), default="demo", show_default=True, help="starting configuration")
@click.option("--dataset", help="mnist5k | digits | mnist:<dir> | cifar10:<dir> | cifar100:<dir> | folder:<dir>")
@click.option("--image-size", type=int, help="resize images to N x N (the paper runs CIFAR at 128)")
@click.option("--base", type=click.Choice(["small", "resnet50", "mobilenetv2"]), help="task CNN")
@click.option("--codec", type=click.Choice(list(CODECS)), help="SemanticNN (default) or a baseline")
@click.option("--task", "task_only", is_flag=True, help="train the task CNN only (a bundle to start codecs from)")
@click.option("--stage", type=click.Choice(["1", "2", "both"]), default="both", show_default=True,
              help="codec stages to train; stage 2 alone needs --init with a stage-1 bundle")
@click.option("--init", "init_path", type=click.Path(path_type=Path), help="start from this bundle: its task CNN and codec")
@click.option("--xai/--no-xai", default=None, help="the XAI asymmetry term (eq. 3) in stage 2")
@click.option("--attention/--no-attention", default=None, help="BER attention in the decoder (off: the BER is withheld)")
@click.option("--crop-ratio", type=float, help="partial offloading: share of the code map sent (Algorithm 1)")
@click.option("--channel", help="training channel: dynamic:LO,HI | iid:BER | ge:BER,BURST | trace:FILE | bpsk-snr:DB")
@click.option("--ber-range", help="shorthand for --channel dynamic:LO,HI")
@click.option("--alpha", "alpha_div", type=float, help="weight of L_div (centre usage)")
@click.option("--beta", "beta_cls", type=float, help="weight of the cross-entropy")
@click.option("--gamma", "gamma_xai", type=float, help="weight of L_XAI (eq. 3); 0 is --no-xai")
@click.option("--xai-lambda", type=float, help="lambda of eq. 3")
@click.option("--xai-r", type=float, help="r of eq. 3")
@click.option("--decoder-blocks", type=int, help="decoder blocks (at least 2)")
@click.option("--epochs", type=int, help="epochs of every phase (task, stage 1, stage 2)")
@click.option("--task-epochs", type=int)
@click.option("--stage1-epochs", type=int)
@click.option("--stage2-epochs", type=int)
@click.option("--train-images", type=int, help="use only the first N training images")
@click.option("--seed", type=int)
@click.option("--device", type=click.Choice(["cpu", "cuda"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="bundle folder (default: runs/<preset>-<config digest>)")
@click.option("--resume", is_flag=True, help="continue a killed training from the checkpoint in --out (the default folder always resumes)")
def train(preset, dataset, image_size, base, codec, task_only, stage, init_path, xai, attention, crop_ratio, channel, ber_range,
          alpha_div, beta_cls, gamma_xai, xai_lambda, xai_r, decoder_blocks, epochs, task_epochs, stage1_epochs, stage2_epochs, train_images, seed, device, out, resume) -> None:
    """Train a task CNN and a codec (SemanticNN, or a baseline with --codec) on its frozen stem; write a bundle.
    Several processes: torchrun --nproc-per-node 2 --no-python .venv/bin/semhil train ..."""
    from codec_train.bundle import load_bundle
    from codec_train.distributed import init_from_env, is_main
    from codec_train.train import PRESETS, cached_bundle, train_bundle
    init_from_env()
    if ber_range:
        channel = f"dynamic:{ber_range}"
    changes = {"dataset": dataset, "image_size": image_size, "base": base, "codec": codec, "crop_ratio": crop_ratio, "channel": channel,
               "attention": attention, "train_images": train_images, "seed": seed, "device": device,
               "alpha_div": alpha_div, "beta_cls": beta_cls, "xai_lambda": xai_lambda, "xai_r": xai_r,
               "decoder_blocks": decoder_blocks,
               "gamma_xai": gamma_xai if xai is None else (XAI_WEIGHT if xai else 0.0)}
    if epochs is not None:
        changes.update(task_epochs=epochs, stage1_epochs=epochs, stage2_epochs=epochs)
    changes.update(task_epochs=task_epochs, stage1_epochs=stage1_epochs, stage2_epochs=stage2_epochs)
    config = dataclasses.replace(PRESETS[preset], **{k: v for k, v in changes.items() if v is not None})
    if task_only:
        config = dataclasses.replace(config, stage1_epochs=0, stage2_epochs=0)
    elif stage != "both":
        config = dataclasses.replace(config, **{"stage2_epochs" if stage == "1" else "stage1_epochs": 0})
    if stage == "2" and init_path is None:
        raise SemhilError("--stage 2 starts from a stage-1 bundle: give it with --init BUNDLE")
    if init_path and task_only:
        raise SemhilError("--task trains a task CNN from scratch: drop --init")
    if config.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise SemhilError("--device cuda: no CUDA device here; use --device cpu")
    init = load_bundle(init_path) if init_path else None
    if init and {k: v for k, v in init.config.items() if k in ("dataset", "image_size", "base")} != \
            {"dataset": config.dataset, "image_size": config.image_size, "base": config.base}:
        raise SemhilError(f"--init {init_path} was trained with another dataset, image size or base model than this run")
    with progress_bar(disable=not is_main()) as progress:
        if out is None and init is None:
            bundle = cached_bundle(config, RUNS_DIR, preset if config.codec == "semanticnn" else f"{preset}-{config.codec}", progress)
        else:
            out = out or RUNS_DIR / f"{preset}-{config.digest()}-from-{init.hash}"
            if (out / "bundle.json").exists():
                raise SemhilError(f"{out} already holds a bundle: choose another --out or delete it")
            bundle = train_bundle(config, out, progress, init=init, resume=resume)
    if is_main():
        console.print(f"bundle {bundle.path} (hash {bundle.hash})")
        console.print_json(json.dumps(bundle.metrics))


@cli.command("eval")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--dataset", help="dataset spec (default: the bundle's)")
@ber_option
@click.option("--channel", "channel_specs", multiple=True, help="a channel model instead of --ber (repeatable): ge:BER,BURST, dynamic:LO,HI, trace:FILE, bpsk-snr:DB")
@pilots_option
@click.option("--link", "link_spec", metavar="SPEC", help="send the code in a radio's packets: ble|802.15.4|lora|payload=N,rate=R"
              "[,crc-off][,arq=N][,loss=P] (CRC on by default: a packet with a bad bit is lost)")
@click.option("--float", "use_float", is_flag=True, help="the float device half instead of the int8 simulator")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def evaluate(bundle, dataset, ber, channel_specs, pilots_spec, link_spec, use_float, seed, json_path) -> None:
    """Accuracy of BUNDLE under a simulated channel (no board): int8 device half by default."""
    from codec_train.bundle import load_bundle
    from radio.channel import IidChannel, parse_channel
    from radio.link import parse_link
    from radio.pilots import parse_pilots
    from .report import accuracy_table
    from .scoring import evaluate_bundle
    channels = [parse_channel(spec) for spec in channel_specs] or [IidChannel(b) for b in parse_bers(ber)]
    pilots = None if pilots_spec is None else parse_pilots(pilots_spec)
    link = None if link_spec is None else parse_link(link_spec)
    result = evaluate_bundle(load_bundle(bundle), dataset, channels, use_float, seed, pilots, link)
    console.print(accuracy_table(result))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))


@cli.command()
@click.option("--base", type=click.Choice(["small", "resnet50", "mobilenetv2"]), default="resnet50", show_default=True)
@click.option("--image-size", type=int, required=True)
@click.option("--in-channels", default=3, show_default=True)
@click.option("--crop-ratio", default=1.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON only")
def inspect(base, image_size, in_channels, crop_ratio, as_json) -> None:
    """Shapes, MACs and bytes per image of a codec, without training."""
    from codec_train.inspect import inspect_codec
    info = inspect_codec(base, image_size, in_channels, crop_ratio=crop_ratio)
    if as_json:
        click.echo(json.dumps(info))
    else:
        console.print_json(json.dumps(info))


@cli.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--fec", "fec_spec", required=True, help="rs:PARITY[,interleave=DEPTH] | interleave=DEPTH, e.g. rs:16,interleave=8")
def protect(bundle, fec_spec) -> None:
    """A bundle whose device also protects its code: BUNDLE's codec with Reed-Solomon parity and/or a bit
    interleaver after the packer, as BUNDLE-<fec> (made once, then reused). Run, eval and sweep it as any bundle."""
    from codec_train.bundle import load_bundle, protected_bundle
    from radio.fec import parse_fec
    original = load_bundle(bundle)
    protected = protected_bundle(original, parse_fec(fec_spec))
    console.print(f"{protected.path}  ({original.graph['code_bytes']} code bytes -> {protected.graph['fec']['sent_bytes']} "
                  f"sent, hash {protected.hash})", highlight=False)
