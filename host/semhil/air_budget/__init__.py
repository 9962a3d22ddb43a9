"""`semhil compare --air-bytes B`: SemanticNN against classical digital pipelines at the same air bytes.

The flow, one module each:
  pipelines  what a pipeline is (a codec, an FEC, ARQ) and how it is sized to B air bytes per image
  (train)    each sized codec is trained (codec_train), protected with its FEC (codec_train.bundle.protected_bundle)
  (run)      and run on the board (semhil.sweep): its codes are checked bit for bit against the simulator
  scoring    the board's codes through the link layer (radio.link) over BER (CRC off) and packet loss (CRC on)
  table      the table, compare.json and the report with the curves
  flow       all of it, resumable, for the command line
"""
