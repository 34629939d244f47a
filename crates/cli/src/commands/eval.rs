//! `orion eval`: run a program directory on a device with `.npy` inputs and outputs.

use crate::commands::device::DeviceArg;
use crate::npy::{self, Array, NpyDType};
use anyhow::{bail, Context, Result};
use mil::bundle::ProgramBundle;
use mil::DType;
use runtime::{HostTensor, Interface, ProgramKey, Session};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  orion compile gpt2.prefill_ffn --bucket 64 --out k\n  orion eval k --input x=x.npy --out results\n\nInputs are bound by their MIL names (never by position); every input must be given. Outputs are written as OUTDIR/<name>.npy in the dtype the program declares."
)]
pub struct Args {
    /// Program directory: model.mil plus the weight files it references.
    dir: PathBuf,
    /// An input as NAME=FILE.npy (fp16 or fp32, the program's declared shape); repeatable.
    #[arg(long = "input", short, value_name = "NAME=FILE.npy")]
    inputs: Vec<String>,
    /// Directory for the outputs.
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArg,
}

/// Runs the program and writes its outputs.
pub fn run(args: Args) -> Result<()> {
    let bundle = ProgramBundle::read_dir(&args.dir)
        .with_context(|| format!("reading program {}", args.dir.display()))?;
    let interface = Interface::of(&bundle)?;
    let mut names: Vec<&str> = args
        .inputs
        .iter()
        .map(|spec| spec.split_once('=').map_or(spec.as_str(), |(n, _)| n))
        .collect();
    names.sort_unstable();
    if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("--input {} is given twice; give each input once", twice[0]);
    }
    let mut given: Vec<(String, HostTensor)> = Vec::new();
    for spec in &args.inputs {
        let (name, file) = spec
            .split_once('=')
            .with_context(|| format!("--input {spec:?} must be NAME=FILE.npy"))?;
        let Some(declared) = interface.inputs.iter().find(|s| s.name == name) else {
            let names: Vec<&str> = interface.inputs.iter().map(|s| s.name.as_str()).collect();
            bail!("the program has no input {name:?}; its inputs are {names:?}");
        };
        let array = npy::read(file.as_ref())?;
        if array.shape != declared.shape {
            bail!(
                "input {name}: {file} has shape {:?}, the program declares {:?}",
                array.shape,
                declared.shape
            );
        }
        given.push((name.to_string(), HostTensor::new(array.shape, array.data)));
    }
    let missing: Vec<&str> = interface
        .inputs
        .iter()
        .filter(|s| !given.iter().any(|(n, _)| *n == s.name))
        .map(|s| s.name.as_str())
        .collect();
    if !missing.is_empty() {
        bail!("missing inputs {missing:?}; give each as --input NAME=FILE.npy");
    }
    let device = args.device.open()?;
    let mut session = Session::new(device);
    let key = ProgramKey {
        kernel: args.dir.display().to_string(),
        layer: 0,
        weights_id: 0,
        bucket: 0,
    };
    session.load(&key, &bundle)?;
    let named: Vec<(&str, &HostTensor)> = given.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let outputs = session.run(&key, &named)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for spec in &interface.outputs {
        let t = &outputs[&spec.name];
        let dtype = if spec.dtype == DType::Fp16 {
            NpyDType::F16
        } else {
            NpyDType::F32
        };
        let path = args.out.join(format!("{}.npy", spec.name));
        npy::write(
            &path,
            &Array {
                dtype,
                shape: t.shape.clone(),
                data: t.data.clone(),
            },
        )?;
        println!("wrote {} ({} {:?})", path.display(), spec.dtype, spec.shape);
    }
    Ok(())
}
