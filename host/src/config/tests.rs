//! The run configuration: which parameter each sampler gets, the defaults, and the refusals.

use anneal_core::Plan;
use anneal_core::samplers::any::SamplerKind;
use clap::Parser;

use super::*;
use crate::cli::{Cli, Command, DEFAULT_BATCH, DEFAULT_SIGMA_MIN};

/// `anneal sample ARGS` on toy2d with 4 levels unless ARGS say otherwise, as a configuration.
fn configure(args: &str) -> Result<RunConfig, UsageError> {
    let mut argv = vec!["anneal", "sample"];
    argv.extend(args.split_whitespace());
    if !args.contains("--levels") && !args.contains("--technique2") {
        argv.extend(["--levels", "4"]);
    }
    let Command::Sample(a) = Cli::try_parse_from(argv).expect("flags parse").command else {
        unreachable!("a sample command")
    };
    RunConfig::new(&RunSpec::from_sample(&a, &serde_json::Value::Null, None), load_data(&a.data)?)
}

/// Every sampler with its defaults: T recorded exactly for the samplers that use it, Technique
/// 4's ε exactly for those that take a Langevin step, CAS's εc = 2 for CAS alone, and the plan's
/// length from the core's rules.
#[test]
fn every_sampler_gets_the_parameters_it_takes() {
    for kind in SamplerKind::ALL {
        let c = configure(&format!("--sampler {} --steps-per-level 3", kind.name()))
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let r = &c.record;
        assert_eq!(c.kind, kind);
        assert_eq!(r.steps_per_level, kind.uses_steps_per_level().then_some(3), "{kind:?}");
        assert_eq!(r.eps_source.is_some(), kind.takes_langevin_step(false), "{kind:?}");
        assert_eq!(r.eps_source.is_some(), r.eps_ncsnv2.is_some(), "{kind:?}");
        assert_eq!(r.cas, kind.takes_eta().then(|| ("eps_c".to_string(), DEFAULT_EPS_C)));
        assert_eq!(r.levels, 4);
        assert_eq!(r.plan_steps, c.plan.len());
        assert_eq!(r.tau, 1.0, "toy2d's default τ");
    }
}

/// The defaults are the ones defined once in this module and in the core.
#[test]
fn defaults_are_stated_once() {
    let c = configure("--levels 100").unwrap();
    assert_eq!(c.record.levels, DEFAULT_LEVELS);
    assert_eq!(c.record.sigma_min, DEFAULT_SIGMA_MIN);
    assert_eq!(c.batch, DEFAULT_BATCH);
    assert_eq!(c.record.sigma_max_source, "Technique 1 (largest pairwise distance of the data)");
    let als = configure("--sampler als").unwrap();
    assert_eq!(als.record.steps_per_level, Some(SamplerParams::DEFAULT.steps_per_level));
    let pc = configure("--sampler pc --snr 0.16").unwrap();
    assert_eq!(pc.record.eps_source, None, "the snr corrector takes no ε");
}

/// A single level runs the samplers that use T and is refused by the others, naming the sampler.
#[test]
fn one_level_is_for_the_samplers_that_use_t() {
    for kind in SamplerKind::ALL {
        let r = configure(&format!("--sampler {} --levels 1 --eps 0.01", kind.name()));
        if kind.min_levels() == 1 && kind.takes_langevin_step(false) {
            assert!(r.is_ok(), "{kind:?}: {:?}", r.err());
        } else if kind.min_levels() == 2 {
            let e = r.err().unwrap().to_string();
            assert!(
                e.contains(&format!("--levels = 1 is out of range for --sampler {}", kind.name())),
                "{e}"
            );
        }
    }
    let e = configure("--sampler langevin --levels 1").err().unwrap().to_string();
    assert!(e.contains("--eps is required with --levels 1"), "{e}");
}

/// Parameters given to a sampler that does not take them are refused with both names; bad
/// counts are refused before anything runs.
#[test]
fn refusals_name_the_flag() {
    let cases = [
        ("--sampler cas --eps 0.1", "--eps does not apply to --sampler cas"),
        ("--sampler noise-denoise --eps 0.1", "--eps does not apply to --sampler noise-denoise"),
        ("--sampler pc --snr 0.1 --eps 0.1", "--eps does not apply to --sampler pc with --snr"),
        ("--sampler als --eps-b 0.001", "--eps-b does not apply to --sampler als"),
        ("--sampler obabo --eps-c 2", "--eps-c does not apply to --sampler obabo"),
        ("--steps-per-level 0 --sampler als", "--steps-per-level = 0 is out of range"),
        ("--n 0", "--n = 0 is out of range"),
        ("--batch 0", "--batch = 0 is out of range"),
        ("--tau -1", "--tau = -1 is out of range"),
        ("--eps-c 0.5", "--eps-c = 0.5 is out of range"),
    ];
    for (args, want) in cases {
        let e = configure(args).err().unwrap_or_else(|| panic!("{args}: accepted"));
        assert!(e.to_string().contains(want), "{args}: {e}");
    }
    // The core's verdicts keep their variant: tune sorts its cells by it.
    let e = configure("--eps-b 1").err().unwrap();
    assert!(matches!(e.core(), Some(anneal_core::Error::EtaOutOfBounds { .. })), "{e:?}");
    let e = configure("--sampler als --eps 1").err().unwrap();
    assert!(matches!(e.core(), Some(anneal_core::Error::StepUnstable { .. })), "{e:?}");
}
