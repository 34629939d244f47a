//! The Apple Neural Engine: a [`Device`] that drives the hardware through the private
//! `AppleNeuralEngine` framework exactly as `spec/ane.md` §1 describes, every symbol resolved
//! at run time (`libloading`), so the bridge builds, lints and tests its error paths anywhere.
//!
//! | rule | what the bridge does |
//! |---|---|
//! | C5 | counts `compileWithQoS:` calls per process; fails with [`Error::Budget`] before a call past the budget (default 119) |
//! | C9 | passes the MIL text as UTF-8 `NSData`, never `NSString` |
//! | C11 | passes an empty weights dictionary, never nil, for a program without weights |
//! | C23 | fails with [`Error::Loaded`] once this device holds the loaded-program limit (default 128) |
//!
//! The silent rules (C3, C13, C14) are the session's: surfaces arrive padded and in
//! alphabetical order of their MIL names, and are bound by position `0..n`.

mod ffi;
mod iosurface;
mod model;
mod objc;

use crate::device::{Device, ProgramHandle, Surface};
use crate::emulate::{DEFAULT_COMPILE_BUDGET, DEFAULT_LOADED_LIMIT};
use crate::error::{Error, Result};
use ffi::Api;
use iosurface::IoSurface;
use mil::bundle::{ProgramBundle, MODEL_PATH};
use model::Model;
use objc::{Obj, Pool};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The quality-of-service level every known client passes (spec §1).
pub const DEFAULT_QOS: u32 = 21;
/// The pause before the single retry of a failed load.
const LOAD_RETRY_DELAY: Duration = Duration::from_millis(100);

/// `compileWithQoS:` calls made by this process (C5 is a per-process limit).
static COMPILES: AtomicUsize = AtomicUsize::new(0);

/// Bridge settings.
#[derive(Clone, Debug)]
pub struct AneConfig {
    /// Compiles allowed in this process (C5).
    pub compile_budget: usize,
    /// Programs this device keeps loaded at once (C23).
    pub loaded_limit: usize,
    /// Quality of service passed to compile, load, evaluate and unload.
    pub qos: u32,
}

impl Default for AneConfig {
    fn default() -> Self {
        AneConfig {
            compile_budget: DEFAULT_COMPILE_BUDGET,
            loaded_limit: DEFAULT_LOADED_LIMIT,
            qos: DEFAULT_QOS,
        }
    }
}

/// The real Neural Engine, reached through the private framework.
pub struct AppleNeuralEngine {
    api: &'static Api,
    config: AneConfig,
    temp_dir: PathBuf,
    programs: HashMap<u64, Program>,
    next_id: u64,
}

/// One compiled, loaded program.
struct Program {
    model: Model,
    /// `NSTemporaryDirectory()/<hexStringIdentifier>/`
    dir: PathBuf,
    /// Surfaces and request of the last evaluation, reused while the sizes match.
    bound: Option<Bound>,
}

/// IOSurfaces and the `_ANERequest` that binds them, cached per program.
struct Bound {
    inputs: Vec<IoSurface>,
    outputs: Vec<IoSurface>,
    request: Obj,
}

/// Why the Neural Engine cannot be used here, or `Ok` when it can.
pub fn probe() -> std::result::Result<(), String> {
    ffi::api().map(|_| ())
}

/// Whether the Neural Engine can be opened on this machine.
pub fn available() -> bool {
    probe().is_ok()
}

impl AppleNeuralEngine {
    /// Opens the Neural Engine with default settings.
    pub fn open() -> Result<Self> {
        AppleNeuralEngine::open_with(AneConfig::default())
    }

    /// Opens the Neural Engine with the given settings.
    pub fn open_with(config: AneConfig) -> Result<Self> {
        let unavailable =
            |e: String| Error::Unavailable(format!("Apple Neural Engine not available: {e}"));
        let api = ffi::api().map_err(unavailable)?;
        let temp_dir = api.temporary_dir().map_err(unavailable)?;
        Ok(AppleNeuralEngine {
            api,
            config,
            temp_dir,
            programs: HashMap::new(),
            next_id: 1,
        })
    }

    /// The settings.
    pub fn config(&self) -> &AneConfig {
        &self.config
    }

    /// Programs currently loaded by this device.
    pub fn loaded(&self) -> usize {
        self.programs.len()
    }

    /// Builds the model, writes its directory, compiles (counted) and loads it.
    fn build(&self, bundle: &ProgramBundle) -> Result<Program> {
        let api = self.api;
        let _pool = Pool::push(api);
        let mil = api.data(bundle.mil.as_bytes()).map_err(Error::Compile)?;
        let weights = weights_dictionary(api, bundle).map_err(Error::Compile)?;
        let model = Model::new(api, &mil, &weights).map_err(Error::Compile)?;
        let hex = model.hex_identifier().map_err(Error::Compile)?;
        let dir = program_dir(&self.temp_dir, &hex).map_err(Error::Compile)?;
        write_program(bundle, &dir)?;
        let compiled = reserve_compile(&COMPILES, self.config.compile_budget)
            .and_then(|()| model.compile(self.config.qos).map_err(Error::Compile))
            .and_then(|()| self.load(&model));
        if let Err(e) = compiled {
            if !self.programs.values().any(|p| p.dir == dir) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
        Ok(Program {
            model,
            dir,
            bound: None,
        })
    }

    /// `loadWithQoS:`, retried once after [`LOAD_RETRY_DELAY`].
    fn load(&self, model: &Model) -> Result<()> {
        model.load(self.config.qos).or_else(|_| {
            std::thread::sleep(LOAD_RETRY_DELAY);
            model
                .load(self.config.qos)
                .map_err(|e| Error::Compile(format!("{e} (after one retry)")))
        })
    }
}

impl std::fmt::Debug for AppleNeuralEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleNeuralEngine")
            .field("config", &self.config)
            .field("temp_dir", &self.temp_dir)
            .field("loaded", &self.programs.len())
            .finish()
    }
}

/// Fails once `loaded` programs reach `limit` (C23).
fn check_loaded(loaded: usize, limit: usize) -> Result<()> {
    if loaded >= limit {
        return Err(Error::Loaded { loaded, limit });
    }
    Ok(())
}

/// Fails once `counter` has reached `budget` (C5), without counting.
fn check_budget(counter: &AtomicUsize, budget: usize) -> Result<()> {
    let used = counter.load(Ordering::SeqCst);
    if used >= budget {
        return Err(Error::Budget { used, budget });
    }
    Ok(())
}

/// Counts one compile in `counter`; fails without counting once `budget` is spent (C5).
fn reserve_compile(counter: &AtomicUsize, budget: usize) -> Result<()> {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
            (used < budget).then_some(used + 1)
        })
        .map(|_| ())
        .map_err(|used| Error::Budget { used, budget })
}

/// The weights dictionary's keys, one per weight file: `@model_path/<rel>`.
fn weight_keys(bundle: &ProgramBundle) -> Vec<String> {
    bundle
        .weights
        .iter()
        .map(|(rel, _)| format!("{MODEL_PATH}{rel}"))
        .collect()
}

/// `{ "@model_path/<rel>": { "offset": @0, "data": NSData(file) } }`; `{}` without weights (C11).
fn weights_dictionary(
    api: &'static Api,
    bundle: &ProgramBundle,
) -> std::result::Result<Obj, String> {
    let offset = api.string("offset")?;
    let data = api.string("data")?;
    let zero = api.number(0)?;
    let mut keys = Vec::with_capacity(bundle.weights.len());
    let mut entries = Vec::with_capacity(bundle.weights.len());
    for (key, (_, bytes)) in weight_keys(bundle).iter().zip(&bundle.weights) {
        keys.push(api.string(key)?);
        let blob = api.data(bytes)?;
        entries.push(api.dictionary(&[(&offset, &zero), (&data, &blob)])?);
    }
    let pairs: Vec<(&Obj, &Obj)> = keys.iter().zip(&entries).collect();
    api.dictionary(&pairs)
}

/// `<temp>/<hex>/`, refusing an identifier that is not a single path component.
fn program_dir(temp: &Path, hex: &str) -> std::result::Result<PathBuf, String> {
    if hex.is_empty() || hex == "." || hex == ".." || hex.contains(['/', '\\', '\0']) {
        return Err(format!(
            "hexStringIdentifier {hex:?} is not a directory name"
        ));
    }
    Ok(temp.join(hex))
}

/// Writes `model.mil`, `weights/` and every weight file into `dir` (spec §1 step 3).
fn write_program(bundle: &ProgramBundle, dir: &Path) -> Result<()> {
    let weights = dir.join("weights");
    std::fs::create_dir_all(&weights)
        .map_err(|e| Error::Compile(format!("creating {}: {e}", weights.display())))?;
    bundle
        .write_dir(dir)
        .map_err(|e| Error::Compile(format!("writing the program to {}: {e}", dir.display())))
}

impl Bound {
    /// IOSurfaces of the given sizes, wrapped, and the request binding them by position.
    fn new(
        api: &'static Api,
        inputs: &[usize],
        outputs: &[usize],
    ) -> std::result::Result<Bound, String> {
        let surfaces = |sizes: &[usize]| {
            sizes
                .iter()
                .map(|&bytes| IoSurface::new(api, bytes))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        let (inputs, outputs) = (surfaces(inputs)?, surfaces(outputs)?);
        let wrap = |s: &[IoSurface]| {
            s.iter()
                .map(|s| model::io_object(api, s))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        let request = model::request(api, &wrap(&inputs)?, &wrap(&outputs)?)?;
        Ok(Bound {
            inputs,
            outputs,
            request,
        })
    }

    /// Copies the inputs in, evaluates, and copies the outputs back.
    fn run(
        &self,
        model: &Model,
        qos: u32,
        inputs: &[&Surface],
        outputs: &mut [Surface],
    ) -> std::result::Result<(), String> {
        for (surface, input) in self.inputs.iter().zip(inputs) {
            surface.write(input.bytes())?;
        }
        model.evaluate(qos, &self.request)?;
        for (surface, output) in self.outputs.iter().zip(outputs.iter_mut()) {
            surface.read(output.bytes_mut())?;
        }
        Ok(())
    }

    /// Whether the cached surfaces have exactly these sizes.
    fn fits(&self, inputs: &[&Surface], outputs: &[Surface]) -> bool {
        same_sizes(&self.inputs, inputs.iter().map(|s| s.alloc_size()))
            && same_sizes(&self.outputs, outputs.iter().map(|s| s.alloc_size()))
    }
}

/// Whether `surfaces` have exactly the sizes `sizes`, in order.
fn same_sizes(surfaces: &[IoSurface], sizes: impl ExactSizeIterator<Item = usize>) -> bool {
    surfaces.len() == sizes.len() && surfaces.iter().map(IoSurface::bytes).eq(sizes)
}

impl Program {
    /// Unloads the model, releases it and (unless `keep_dir`) removes its directory.
    fn release(self, qos: u32, keep_dir: bool) -> Result<()> {
        let unloaded = self.model.unload(qos);
        drop(self.bound);
        drop(self.model);
        let removed = if keep_dir {
            Ok(())
        } else {
            std::fs::remove_dir_all(&self.dir)
                .map_err(|e| format!("removing {}: {e}", self.dir.display()))
        };
        unloaded.and(removed).map_err(|message| Error::Eval {
            rule: None,
            message: format!("unload: {message}"),
        })
    }
}

impl Device for AppleNeuralEngine {
    fn name(&self) -> &'static str {
        "ane"
    }

    fn compile(&mut self, program: &ProgramBundle) -> Result<ProgramHandle> {
        check_loaded(self.programs.len(), self.config.loaded_limit)?;
        check_budget(&COMPILES, self.config.compile_budget)?;
        let program = self.build(program)?;
        let id = self.next_id;
        self.next_id += 1;
        self.programs.insert(id, program);
        Ok(ProgramHandle(id))
    }

    fn eval(
        &mut self,
        program: &ProgramHandle,
        inputs: &[&Surface],
        outputs: &mut [Surface],
    ) -> Result<()> {
        let (api, qos) = (self.api, self.config.qos);
        let eval_err = |message: String| Error::Eval {
            rule: None,
            message,
        };
        let program = self
            .programs
            .get_mut(&program.0)
            .ok_or(Error::Handle(program.0))?;
        let _pool = Pool::push(api);
        let bound = match program.bound.take() {
            Some(bound) if bound.fits(inputs, outputs) => bound,
            _ => {
                let in_sizes: Vec<usize> = inputs.iter().map(|s| s.alloc_size()).collect();
                let out_sizes: Vec<usize> = outputs.iter().map(|s| s.alloc_size()).collect();
                Bound::new(api, &in_sizes, &out_sizes).map_err(eval_err)?
            }
        };
        let result = bound.run(&program.model, qos, inputs, outputs);
        program.bound = Some(bound);
        result.map_err(eval_err)
    }

    fn unload(&mut self, program: ProgramHandle) -> Result<()> {
        let program = self
            .programs
            .remove(&program.0)
            .ok_or(Error::Handle(program.0))?;
        let shared = self.programs.values().any(|p| p.dir == program.dir);
        program.release(self.config.qos, shared)
    }

    fn compiles_used(&self) -> usize {
        COMPILES.load(Ordering::SeqCst)
    }

    fn compile_budget(&self) -> usize {
        self.config.compile_budget
    }
}

impl Drop for AppleNeuralEngine {
    fn drop(&mut self) {
        let qos = self.config.qos;
        for (_, program) in self.programs.drain() {
            // Nothing can report a failure from drop; the process is tearing the device down.
            let _ = program.release(qos, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with_weights() -> ProgramBundle {
        ProgramBundle {
            mil: "program(1.3)\n".to_string(),
            weights: vec![
                ("weights/w.bin".to_string(), vec![1, 2, 3]),
                ("weights/b.bin".to_string(), vec![4]),
            ],
        }
    }

    #[cfg(not(target_os = "macos"))]
    #[test]
    fn open_off_macos_is_unavailable_naming_libobjc() {
        let err = AppleNeuralEngine::open().expect_err("no Neural Engine here");
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "Apple Neural Engine not available: cannot load /usr/lib/libobjc.A.dylib: "
            ),
            "{text}"
        );
        assert!(!available());
        assert_eq!(
            probe().unwrap_err(),
            text.trim_start_matches("Apple Neural Engine not available: ")
        );
    }

    #[test]
    fn weight_keys_prefix_model_path_in_bundle_order() {
        assert_eq!(
            weight_keys(&bundle_with_weights()),
            ["@model_path/weights/w.bin", "@model_path/weights/b.bin"]
        );
        assert!(weight_keys(&ProgramBundle::default()).is_empty());
    }

    #[test]
    fn program_dir_is_temp_joined_with_a_single_component() {
        let temp = Path::new("/private/var/folders/xy/T");
        assert_eq!(
            program_dir(temp, "0A1B2C_3d4e").unwrap(),
            temp.join("0A1B2C_3d4e")
        );
        for bad in ["", ".", "..", "../etc", "a/b", "a\\b"] {
            assert!(program_dir(temp, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn budget_counts_to_the_limit_then_refuses_without_counting() {
        let counter = AtomicUsize::new(0);
        for _ in 0..3 {
            check_budget(&counter, 3).unwrap();
            reserve_compile(&counter, 3).unwrap();
        }
        assert_eq!(counter.load(Ordering::SeqCst), 3);
        let early = check_budget(&counter, 3).unwrap_err();
        assert!(
            matches!(early, Error::Budget { used: 3, budget: 3 }),
            "{early:?}"
        );
        let late = reserve_compile(&counter, 3).unwrap_err();
        assert!(
            matches!(late, Error::Budget { used: 3, budget: 3 }),
            "{late:?}"
        );
        assert_eq!(counter.load(Ordering::SeqCst), 3);
        assert!(late.to_string().contains("[C5]"));
    }

    #[test]
    fn loaded_cap_refuses_at_the_limit() {
        check_loaded(127, 128).unwrap();
        let err = check_loaded(128, 128).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Loaded {
                    loaded: 128,
                    limit: 128
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn write_program_lays_out_model_and_weights() {
        let root = std::env::temp_dir().join(format!("orion-ane-layout-{}", std::process::id()));
        let dir = root.join("ABCDEF");
        write_program(&bundle_with_weights(), &dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("model.mil")).unwrap(),
            "program(1.3)\n"
        );
        assert_eq!(std::fs::read(dir.join("weights/w.bin")).unwrap(), [1, 2, 3]);
        assert_eq!(std::fs::read(dir.join("weights/b.bin")).unwrap(), [4]);
        let bare = root.join("000000");
        write_program(&ProgramBundle::default(), &bare).unwrap();
        assert!(bare.join("weights").is_dir());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn default_config_matches_the_catalog() {
        let config = AneConfig::default();
        assert_eq!(config.compile_budget, 119);
        assert_eq!(config.loaded_limit, 128);
        assert_eq!(config.qos, 21);
    }
}
