//! Inpainting.
//!
//! NCSN (Song & Ermon 2019), Algorithm 2: given known values `x_known` and a mask m (1 = known),
//! for each level draw `y = x_known + σ_i z̃` once, and follow every Langevin step with
//! `x ← x ⊙ (1 − m) + y ⊙ m`.
//!
//! In anneal the projection is part of the executor ([`crate::plan::Inpaint`], passed to
//! [`crate::plan::run`]), so it works with every plan: ALS and the single-level samplers project
//! onto `x_known + σ_i z̃_i` during level i; CAS and PC, whose steps move the state from σ_i to
//! σ_{i+1}, project onto `x_known + σ_{i+1} z̃_{i+1}` — the noise level the state has after the step
//! ([`crate::plan::Step::sigma_after`]); after a final denoising step the known part is `x_known`
//! itself.
//!
//! Departures: the CAS/PC use of σ_{i+1} (Alg. 2 is written for ALS only), and the exact data
//! after denoising.
