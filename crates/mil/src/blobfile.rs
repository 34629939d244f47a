//! The BLOBFILE weight format (being written).
