//! The Apple Neural Engine bridge on real hardware: a weighted conv program against the
//! emulator, alphabetical binding of a weightless program, the request cache, and the compile
//! budget. Where the Neural Engine cannot be opened (Linux, a Mac without the framework) each
//! test prints why it skipped and passes; see docs/hardware.md.

use half::f16;
use mil::blobfile::BlobWriter;
use mil::bundle::ProgramBundle;
use runtime::ane::AneConfig;
use runtime::{AppleNeuralEngine, Device, Emulator, Error, ProgramHandle, Surface};
use std::sync::Mutex;

/// The smallest surface the device evaluates (C4).
const SURFACE_BYTES: usize = 49_152;

/// One test at a time on the device: they share the process's compile budget.
static DEVICE: Mutex<()> = Mutex::new(());

const HEADER: &str = r#"program(1.3)
[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]
"#;

/// Opens the device, or prints why the test is skipped.
fn open(config: AneConfig) -> Option<AppleNeuralEngine> {
    match AppleNeuralEngine::open_with(config) {
        Ok(ane) => Some(ane),
        Err(e) => {
            assert!(
                e.to_string()
                    .starts_with("Apple Neural Engine not available: "),
                "{e}"
            );
            println!("skipped: {e}");
            None
        }
    }
}

/// `n` deterministic fp16 values in `[-scale, scale)`.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f16> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            f16::from_f32((unit * 2.0 - 1.0) * scale)
        })
        .collect()
}

/// `n` deterministic whole numbers in `[-8, 8]`: their products and differences are exact in
/// fp16, whatever the rounding mode or denormal handling.
fn integers(n: usize, seed: u64) -> Vec<f16> {
    values(n, seed, 8.0)
        .into_iter()
        .map(|v| f16::from_f32(v.to_f32().round()))
        .collect()
}

/// A minimum-size surface holding `data` packed at its start (C4, C14).
fn surface(data: &[f16]) -> Surface {
    let mut s = Surface::new(SURFACE_BYTES);
    for (dst, v) in s.bytes_mut().chunks_exact_mut(2).zip(data) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
    s
}

/// The first `n` fp16 values of a surface.
fn read(s: &Surface, n: usize) -> Vec<f32> {
    s.bytes()
        .chunks_exact(2)
        .take(n)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

/// The spec §2 program: a 1×1 conv of `x [1,64,1,32]` with `W [128,64,1,1]` from a blob file.
fn conv_bundle(weights: &[f16]) -> ProgramBundle {
    let mut blob = BlobWriter::new();
    let offset = blob.add_f16(weights);
    let body = format!(
        r#"{{
    func main<ios18>(tensor<fp16, [1, 64, 1, 32]> x) {{
        tensor<fp16, [128, 64, 1, 1]> W = const()[name = string("W"), val = tensor<fp16, [128, 64, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64({offset})))];
        string pt = const()[name = string("pt"), val = string("valid")];
        tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])];
        tensor<int32, [4]> pd = const()[name = string("pd"), val = tensor<int32, [4]>([0, 0, 0, 0])];
        tensor<int32, [2]> dl = const()[name = string("dl"), val = tensor<int32, [2]>([1, 1])];
        int32 gr = const()[name = string("gr"), val = int32(1)];
        tensor<fp16, [1, 128, 1, 32]> y = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = W, x = x)[name = string("y")];
    }} -> (y);
}}
"#
    );
    ProgramBundle {
        mil: format!("{HEADER}{body}"),
        weights: vec![("weights/w.bin".to_string(), blob.finish())],
    }
}

/// Inputs declared `b, a` and outputs returned `z, m`: both bound in alphabetical order.
fn binding_bundle() -> ProgramBundle {
    let body = r#"{
    func main<ios18>(tensor<fp16, [1, 64, 1, 32]> b, tensor<fp16, [1, 64, 1, 32]> a) {
        tensor<fp16, [1, 64, 1, 32]> z = sub(x = b, y = a)[name = string("z")];
        tensor<fp16, [1, 64, 1, 32]> m = mul(x = b, y = a)[name = string("m")];
    } -> (z, m);
}
"#;
    ProgramBundle {
        mil: format!("{HEADER}{body}"),
        weights: Vec::new(),
    }
}

/// Compiles `bundle`, evaluates it once on `inputs`, unloads it; returns the outputs.
fn run(
    device: &mut dyn Device,
    bundle: &ProgramBundle,
    inputs: &[&Surface],
    outputs: usize,
) -> Vec<Surface> {
    let handle = device.compile(bundle).expect("compile");
    let mut out = vec![Surface::new(SURFACE_BYTES); outputs];
    device.eval(&handle, inputs, &mut out).expect("eval");
    device.unload(handle).expect("unload");
    out
}

/// Evaluates the binding program on fresh inputs and checks `m = b*a`, `z = b-a` exactly.
fn check_binding(device: &mut dyn Device, handle: &ProgramHandle, seed: u64) {
    let (a, b) = (integers(64 * 32, seed), integers(64 * 32, seed + 10));
    let (sa, sb) = (surface(&a), surface(&b));
    let mut out = vec![Surface::new(SURFACE_BYTES); 2];
    device.eval(handle, &[&sa, &sb], &mut out).expect("eval");
    let (m, z) = (read(&out[0], 64 * 32), read(&out[1], 64 * 32));
    for i in 0..64 * 32 {
        let (a, b) = (a[i].to_f32(), b[i].to_f32());
        assert_eq!(
            m[i],
            f16::from_f32(b * a).to_f32(),
            "m = b*a at {i}, seed {seed}"
        );
        assert_eq!(
            z[i],
            f16::from_f32(b - a).to_f32(),
            "z = b-a at {i}, seed {seed}"
        );
    }
}

#[test]
fn test_programs_run_on_the_emulator() {
    let mut emulator = Emulator::new();
    let handle = emulator.compile(&binding_bundle()).expect("compile");
    check_binding(&mut emulator, &handle, 5);
    let x = surface(&values(64 * 32, 2, 1.0));
    let y = run(
        &mut emulator,
        &conv_bundle(&values(128 * 64, 1, 0.125)),
        &[&x],
        1,
    );
    assert!(read(&y[0], 128 * 32).iter().any(|v| v.abs() > 0.1));
}

#[test]
fn conv_with_blob_weights_matches_the_emulator() {
    let _device = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut ane) = open(AneConfig::default()) else {
        return;
    };
    let bundle = conv_bundle(&values(128 * 64, 1, 0.125));
    let x = surface(&values(64 * 32, 2, 1.0));
    let on_ane = run(&mut ane, &bundle, &[&x], 1);
    let on_emulator = run(&mut Emulator::new(), &bundle, &[&x], 1);
    let (got, want) = (read(&on_ane[0], 128 * 32), read(&on_emulator[0], 128 * 32));
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    println!("conv: worst |ane - emulator| = {worst}");
    assert!(
        want.iter().any(|&w| w.abs() > 0.1),
        "the reference is not trivial"
    );
    assert!(worst <= 8e-3, "worst difference {worst}");
}

#[test]
fn inputs_and_outputs_bind_alphabetically_and_the_request_cache_rebinds() {
    let _device = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut ane) = open(AneConfig::default()) else {
        return;
    };
    let handle = ane
        .compile(&binding_bundle())
        .expect("a weightless program compiles");
    for seed in [3, 4] {
        check_binding(&mut ane, &handle, seed);
    }
    ane.unload(handle).expect("unload");
}

#[test]
fn budget_refuses_before_compiling() {
    let _device = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let used = match AppleNeuralEngine::open() {
        Ok(ane) => ane.compiles_used(),
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    let Some(mut ane) = open(AneConfig {
        compile_budget: used,
        ..AneConfig::default()
    }) else {
        return;
    };
    let err = ane
        .compile(&binding_bundle())
        .expect_err("the budget is spent");
    assert!(
        matches!(err, Error::Budget { budget, .. } if budget == used),
        "{err}"
    );
    assert_eq!(
        ane.compiles_used(),
        used,
        "a refused compile is not counted"
    );
}

#[test]
fn loaded_limit_refuses_a_second_program() {
    let _device = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut ane) = open(AneConfig {
        loaded_limit: 1,
        ..AneConfig::default()
    }) else {
        return;
    };
    let first = ane.compile(&binding_bundle()).expect("compile");
    let err = ane
        .compile(&binding_bundle())
        .expect_err("one program is the limit");
    assert!(
        matches!(
            err,
            Error::Loaded {
                loaded: 1,
                limit: 1
            }
        ),
        "{err}"
    );
    ane.unload(first).expect("unload");
    assert_eq!(ane.loaded(), 0);
}
