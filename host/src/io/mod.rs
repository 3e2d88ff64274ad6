//! Reading data sets ([`data`]) and reading and writing `.npy` files ([`npy`]).

pub mod data;
pub mod npy;
