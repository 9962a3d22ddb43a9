"""A pipeline's codes from the board, through the link layer, decoded at the edge: accuracy against BER
(CRC off: bit errors reach the FEC and the decoder) and against packet loss (CRC on: lost packets are
erasures the FEC may recover; what it cannot, the decoder fills), with the air bytes each really took."""
from __future__ import annotations

import dataclasses

import numpy as np

from codec_train.edge import predict_from_payloads, send_over_link
from codec_train.simulate import graph_fec
from radio.channel import IidChannel
from radio.link import Link

DEFAULT_PACKET_LOSSES = (0.01, 0.05, 0.2)


def conditions(link: Link, retransmissions: int, bers, losses) -> list[tuple[str, float, Link]]:
    """(axis, value, link) of each point: the BERs with the CRC off, the packet losses with it on (BER 0)."""
    base = dataclasses.replace(link, max_retransmissions=retransmissions, packet_loss=0.0)
    return ([("ber", ber, dataclasses.replace(base, crc=False)) for ber in bers]
            + [("packet_loss", loss, dataclasses.replace(base, crc=True, packet_loss=loss)) for loss in losses])


def score_over_link(bundle, labels: np.ndarray, payloads: np.ndarray, link: Link, retransmissions: int,
                    bers, losses, seed: int = 0) -> list[dict]:
    """One row per point (see conditions), each seeded with seed + its index."""
    task, codec = bundle.load_models()
    fec = graph_fec(bundle.graph)
    rows = []
    for k, (axis, value, point_link) in enumerate(conditions(link, retransmissions, bers, losses)):
        channel = IidChannel(value if axis == "ber" else 0.0)
        arrival = send_over_link(codec, payloads, point_link, channel, seed + k, fec)
        preds = predict_from_payloads(task, codec, arrival.payloads, arrival.ber, arrival.missing)
        delivery = arrival.delivery
        rows.append({"axis": axis, "ber": channel.ber, "packet_loss": point_link.packet_loss, "crc": point_link.crc,
                     "seed": seed + k, "n": len(labels), "accuracy": float((preds == labels).mean()),
                     "images_with_missing_code": float(arrival.missing.any(axis=1).mean()),
                     "packet_loss_rate": delivery.packet_loss_rate,
                     "retransmissions_mean": float((delivery.attempts - 1).sum(axis=1).mean()),
                     "air_bytes_mean": float(delivery.air_bytes.mean()),
                     "airtime_ms_mean": float(delivery.airtime_s.mean() * 1000)})
    return rows
