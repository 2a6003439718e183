//! The fleet simulator (in progress): deterministic random numbers and reference tables.

#[allow(dead_code)]
mod rng;
#[allow(dead_code)]
mod tables;
