//! Cordon agent (in progress).
