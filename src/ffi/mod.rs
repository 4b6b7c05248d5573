//! The C ABI (`include/nodestats.h`).
