//! Orion's graph compiler: graph IR, builder, shape inference, passes, ANE validation and
//! lowering to MIL text plus weight blobs.
