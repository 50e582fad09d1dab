//! `tessera-autograd`: filled by a later issue.
#![cfg_attr(not(feature = "std"), no_std)]
