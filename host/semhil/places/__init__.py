"""Boards in labgrid places: a lab's coordinator says who holds which board, its exporters serve the
boards' serial ports (ser2net) and debug probes. The flow, one module each:

    coordinator.Coordinator   connect; look a place up; acquire it (refused, naming the holder, when held); release it
    keeper                    a process of its own that releases the place if its holder dies without doing so
    board.PlaceBoard          the place as a board (runners.BoardProcess's interface): acquire, open its serial
                              port, flash and reset through its debugger or power port, release on every exit
"""
