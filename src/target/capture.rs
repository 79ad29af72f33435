//! ptrace capture (filled in next).
