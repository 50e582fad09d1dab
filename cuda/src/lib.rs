//! `tessera-cuda`: the CUDA backend (filled by a later issue).
