//! Reading data sets ([`data`]), reading and writing `.npy` files ([`npy`]), writing outputs
//! atomically ([`mod@write`]).

pub mod data;
pub mod npy;
pub mod write;
