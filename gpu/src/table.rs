//! Plan steps as the kernels read them: one `#[repr(C)]` record per step, coefficients computed
//! by the core in f64 and rounded to f32 once per step exactly as the CPU executor rounds them.

use anneal_core::plan::{SnrNorms, Update};
use anneal_core::{Plan, Quantity, Step};

/// One plan step for the kernels (`struct StepRec` of `gpu/kernels/common.cu`, same layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepRec {
    /// σ of the score evaluation.
    pub sigma: f64,
    /// 1/(2v), v = τ² + σ².
    pub half_inv_v: f64,
    /// D·2⁻²⁴·max‖μ‖/v: the f32 logit error bound per unit ‖y‖.
    pub err_factor: f64,
    /// 1/v.
    pub inv_v: f64,
    /// Score point: coefficient of a.
    pub point_aux: f32,
    /// Score point: coefficient of ξ.
    pub point_noise: f32,
    /// x update: coefficients of x, a, s, ξ.
    pub x: [f32; 4],
    /// a update: coefficients of x, a, s, ξ.
    pub a: [f32; 4],
    /// The snr of an snr update (kind 1).
    pub snr: f32,
    /// The global step number k.
    pub step: u32,
    /// 1 when ξ is drawn.
    pub noise: u32,
    /// 0 linear, 1 snr with per-sample norms.
    pub kind: u32,
    /// 1 when the score point is x itself.
    pub trivial_point: u32,
    /// 1 for a plan step, 0 for padding after the plan's end (the kernels skip it).
    pub active: u32,
}

// SAFETY: a #[repr(C)] struct of plain numbers, valid for any bit pattern, with the layout of the
// kernels' `struct StepRec` (checked by `layout_matches_the_kernels`).
unsafe impl cudarc::driver::DeviceRepr for StepRec {}

impl StepRec {
    /// The record of plan step `k` for a mixture with component std `tau`, dimension `dim` and
    /// largest mean norm `max_norm`. Batch-mean snr norms are refused (they make a sample depend
    /// on its batch; the device runs per-sample norms only).
    pub fn new(
        step: &Step,
        k: usize,
        tau: f64,
        dim: usize,
        max_norm: f64,
    ) -> Result<Self, crate::Error> {
        let v = anneal_core::score::perturbed_variance(tau, step.sigma);
        let k = u32::try_from(k).map_err(|_| crate::Error::TooLarge {
            what: "plan steps",
            value: k,
            max: u32::MAX as usize,
        })?;
        let mut r = StepRec {
            sigma: step.sigma,
            half_inv_v: 0.5 / v,
            err_factor: dim as f64 * (f32::EPSILON as f64 * 0.5) * max_norm / v,
            inv_v: 1.0 / v,
            point_aux: step.point.aux as f32,
            point_noise: step.point.noise as f32,
            step: k,
            noise: step.noise as u32,
            trivial_point: (step.point.aux == 0.0 && step.point.noise == 0.0) as u32,
            active: 1,
            ..Default::default()
        };
        match step.update {
            Update::Linear { x, aux } => {
                r.x = [x.x as f32, x.aux as f32, x.score as f32, x.noise as f32];
                r.a = [aux.x as f32, aux.aux as f32, aux.score as f32, aux.noise as f32];
            }
            Update::Snr { snr, norms: SnrNorms::PerSample } => {
                r.kind = 1;
                r.snr = snr as f32;
            }
            Update::Snr { snr, norms: SnrNorms::Grouped { size: 1 } } => {
                r.kind = 1;
                r.snr = snr as f32;
            }
            Update::Snr { norms: SnrNorms::BatchMean | SnrNorms::Grouped { .. }, .. } => {
                return Err(crate::Error::Unsupported(
                    "grouped and batch-mean snr norms run on the CPU; the CUDA backend runs per-sample norms only (--snr-norms per-sample, or --device cpu)",
                ));
            }
        }
        Ok(r)
    }
}

/// The records of steps `range` of `plan` plus the one after it (the fused kernel of step k
/// prepares step k + 1's score point), as many as exist.
pub fn records<P: Plan + ?Sized>(
    plan: &P,
    range: core::ops::Range<usize>,
    tau: f64,
    dim: usize,
    max_norm: f64,
) -> Result<Vec<StepRec>, crate::Error> {
    let end = (range.end + 1).min(plan.len());
    (range.start..end)
        .map(|k| {
            let step =
                plan.step(k).ok_or(crate::Error::Core(anneal_core::Error::DimensionMismatch {
                    expected: plan.len(),
                    found: k,
                }))?;
            StepRec::new(&step, k, tau, dim, max_norm)
        })
        .collect()
}

/// `mode` of `plan_step` and `snr_norms`: the score from the mixture's S' and row sums (the
/// kernels' `SCORE_MIXTURE`); a network's modes follow its [`crate::NetOutput`] (1 to 4).
pub const SCORE_MIXTURE: u32 = 0;

/// No failure recorded (the kernels' `STATUS_OK`).
pub const STATUS_OK: u32 = u32::MAX;

/// The core's error for a kernel status word `4·k + what` (None for [`STATUS_OK`]).
pub fn status_error<P: Plan + ?Sized>(plan: &P, status: u32) -> Option<anneal_core::Error> {
    if status == STATUS_OK {
        return None;
    }
    let k = (status / 4) as usize;
    let what = match status % 4 {
        0 => Quantity::Score,
        1 => Quantity::State,
        _ => Quantity::Aux,
    };
    let level = plan.step(k).map_or(0, |s| s.level) + 1;
    Some(anneal_core::Error::NonFinite { what, level, step: k + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets the kernels' struct has under the C ABI (4 doubles, 11 floats, 5 u32).
    #[test]
    fn layout_matches_the_kernels() {
        assert_eq!(core::mem::size_of::<StepRec>(), 96);
        assert_eq!(core::mem::align_of::<StepRec>(), 8);
        assert_eq!(core::mem::offset_of!(StepRec, inv_v), 24);
        assert_eq!(core::mem::offset_of!(StepRec, point_aux), 32);
        assert_eq!(core::mem::offset_of!(StepRec, x), 40);
        assert_eq!(core::mem::offset_of!(StepRec, a), 56);
        assert_eq!(core::mem::offset_of!(StepRec, snr), 72);
        assert_eq!(core::mem::offset_of!(StepRec, step), 76);
        assert_eq!(core::mem::offset_of!(StepRec, active), 92);
    }
}
