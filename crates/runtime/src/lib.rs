//! Devices that run MIL programs: the emulator, the Apple Neural Engine bridge and the session.
