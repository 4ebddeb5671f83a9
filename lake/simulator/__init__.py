"""A simulator of Kinesis Firehose deliveries for robot_telemetry, clickstream and cloudtrail.

    from lake.simulator import Simulator, SimulatorConfig
    sim = Simulator(SimulatorConfig(seed=7, duplicate_rate=0.01))
    for written in sim.write_range(storage, start, end): ...

Run it as `python -m lake.simulator --help` (or `lake-simulate`).
"""

from lake.simulator.core import STREAMS, ObjectWritten, Simulator, SimulatorConfig

__all__ = ["STREAMS", "ObjectWritten", "Simulator", "SimulatorConfig"]
