//! Termination signals during capture (filled in next).
