"""The simulated radio between device and edge, below both codec_train and the harness: channel models
(channel), pilot bits for the receiver's BER estimate (pilots), the link layer of packets, CRC and
retransmission (link), and bit-level protection (fec)."""
