//! The private framework's messages (spec §1): in-memory model, compile, load, evaluate,
//! unload, and the request that binds IOSurfaces to a program.
//!
//! Every `objc_msgSend` call is transmuted to the exact C signature of its method, quoted
//! above the call. `BOOL` is read as `i8` (`signed char` on x86_64; on arm64 `bool`, whose
//! low byte carries the same 0/1).

use super::ffi::{Api, Id, IoSurfaceRef, Sel};
use super::iosurface::IoSurface;
use super::objc::{Obj, Pool};
use std::ffi::{c_uint, CStr};
use std::ptr::null_mut;

/// Objective-C `BOOL` as returned by `objc_msgSend`.
type Bool = i8;

/// An `_ANEInMemoryModel`.
pub struct Model {
    model: Obj,
    api: &'static Api,
}

impl Model {
    /// `[_ANEInMemoryModelDescriptor modelWithMILText:mil weights:weights optionsPlist:nil]`,
    /// then `[_ANEInMemoryModel inMemoryModelWithDescriptor:]`.
    pub fn new(api: &'static Api, mil: &Obj, weights: &Obj) -> Result<Model, String> {
        let _pool = Pool::push(api);
        // SAFETY: `+ (id)modelWithMILText:(NSData *)weights:(NSDictionary *)optionsPlist:(id)`
        // called as `id (*)(id, SEL, id, id, id)`; both arguments are live, the plist is nil.
        let descriptor = unsafe {
            let f: unsafe extern "C" fn(Id, Sel, Id, Id, Id) -> Id =
                std::mem::transmute(api.msg_send);
            f(
                api.classes.descriptor.0,
                api.sel(c"modelWithMILText:weights:optionsPlist:"),
                mil.ptr(),
                weights.ptr(),
                null_mut(),
            )
        };
        if descriptor.is_null() {
            return Err(
                "_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist: returned nil"
                    .into(),
            );
        }
        // SAFETY: `+ (id)inMemoryModelWithDescriptor:(id)` called as `id (*)(id, SEL, id)`;
        // the descriptor is alive in `_pool`.
        let model = unsafe {
            let f: unsafe extern "C" fn(Id, Sel, Id) -> Id = std::mem::transmute(api.msg_send);
            f(
                api.classes.model.0,
                api.sel(c"inMemoryModelWithDescriptor:"),
                descriptor,
            )
        };
        let model = Obj::retained(api, model, "_ANEInMemoryModel inMemoryModelWithDescriptor:")?;
        Ok(Model { model, api })
    }

    /// `[model hexStringIdentifier]`: the name of the model's temporary directory.
    pub fn hex_identifier(&self) -> Result<String, String> {
        let _pool = Pool::push(self.api);
        // SAFETY: `- (NSString *)hexStringIdentifier`; the string is read inside `_pool`.
        unsafe {
            let string = self.api.send_id(self.model.ptr(), c"hexStringIdentifier");
            self.api.string_text(string)
        }
        .ok_or_else(|| "hexStringIdentifier returned nil".to_string())
    }

    /// `[model compileWithQoS:qos options:@{} error:&err]`.
    pub fn compile(&self, qos: u32) -> Result<(), String> {
        self.with_options(qos, c"compileWithQoS:options:error:")
    }

    /// `[model loadWithQoS:qos options:@{} error:&err]`.
    pub fn load(&self, qos: u32) -> Result<(), String> {
        self.with_options(qos, c"loadWithQoS:options:error:")
    }

    /// Sends `- (BOOL)<selector>(unsigned int)qos options:(NSDictionary *) error:(NSError **)`.
    fn with_options(&self, qos: u32, selector: &CStr) -> Result<(), String> {
        let api = self.api;
        let _pool = Pool::push(api);
        let options = api.dictionary(&[])?;
        let mut error: Id = null_mut();
        // SAFETY: called as `BOOL (*)(id, SEL, unsigned int, id, id *)`, the signature of both
        // compileWithQoS:options:error: and loadWithQoS:options:error:; `error` is a valid
        // out-pointer and receives an autoreleased NSError read inside `_pool`.
        unsafe {
            let f: unsafe extern "C" fn(Id, Sel, c_uint, Id, *mut Id) -> Bool =
                std::mem::transmute(api.msg_send);
            let ok = f(
                self.model.ptr(),
                api.sel(selector),
                qos,
                options.ptr(),
                &mut error,
            );
            check(api, ok, error, selector)
        }
    }

    /// `[model evaluateWithQoS:qos options:@{} request:request error:&err]`.
    pub fn evaluate(&self, qos: u32, request: &Obj) -> Result<(), String> {
        let api = self.api;
        let _pool = Pool::push(api);
        let options = api.dictionary(&[])?;
        let mut error: Id = null_mut();
        let selector = c"evaluateWithQoS:options:request:error:";
        // SAFETY: called as `BOOL (*)(id, SEL, unsigned int, id, id, id *)`, the signature of
        // `- (BOOL)evaluateWithQoS:(unsigned int)options:(NSDictionary *)request:(_ANERequest *)
        // error:(NSError **)`; every object is live and `error` is a valid out-pointer.
        unsafe {
            let f: unsafe extern "C" fn(Id, Sel, c_uint, Id, Id, *mut Id) -> Bool =
                std::mem::transmute(api.msg_send);
            let ok = f(
                self.model.ptr(),
                api.sel(selector),
                qos,
                options.ptr(),
                request.ptr(),
                &mut error,
            );
            check(api, ok, error, selector)
        }
    }

    /// `[model unloadWithQoS:qos error:&err]`.
    pub fn unload(&self, qos: u32) -> Result<(), String> {
        let api = self.api;
        let _pool = Pool::push(api);
        let mut error: Id = null_mut();
        let selector = c"unloadWithQoS:error:";
        // SAFETY: called as `BOOL (*)(id, SEL, unsigned int, id *)`, the signature of
        // `- (BOOL)unloadWithQoS:(unsigned int)error:(NSError **)`.
        unsafe {
            let f: unsafe extern "C" fn(Id, Sel, c_uint, *mut Id) -> Bool =
                std::mem::transmute(api.msg_send);
            let ok = f(self.model.ptr(), api.sel(selector), qos, &mut error);
            check(api, ok, error, selector)
        }
    }
}

/// Turns a `BOOL` result and its `NSError` into a message naming the method.
///
/// # Safety
/// `error` is nil or a live NSError in the current autorelease pool.
unsafe fn check(api: &Api, ok: Bool, error: Id, selector: &CStr) -> Result<(), String> {
    if ok != 0 {
        return Ok(());
    }
    // SAFETY: forwarded from the caller.
    let text = unsafe { api.error_text(error) };
    Err(format!("{} failed: {text}", selector.to_string_lossy()))
}

/// `[_ANEIOSurfaceObject objectWithIOSurface:surface]`, retained.
pub fn io_object(api: &'static Api, surface: &IoSurface) -> Result<Obj, String> {
    let _pool = Pool::push(api);
    // SAFETY: `+ (id)objectWithIOSurface:(IOSurfaceRef)` called as
    // `id (*)(id, SEL, IOSurfaceRef)`; the surface is live.
    let object = unsafe {
        let f: unsafe extern "C" fn(Id, Sel, IoSurfaceRef) -> Id =
            std::mem::transmute(api.msg_send);
        f(
            api.classes.io_object.0,
            api.sel(c"objectWithIOSurface:"),
            surface.ptr(),
        )
    };
    Obj::retained(api, object, "_ANEIOSurfaceObject objectWithIOSurface:")
}

/// `[_ANERequest requestWithInputs:inputIndices:@[@0…] outputs:outputIndices:@[@0…]
/// weightsBuffer:nil perfStats:nil procedureIndex:@0]`, retained.
pub fn request(api: &'static Api, inputs: &[Obj], outputs: &[Obj]) -> Result<Obj, String> {
    let _pool = Pool::push(api);
    let input_array = api.array(&inputs.iter().collect::<Vec<_>>())?;
    let output_array = api.array(&outputs.iter().collect::<Vec<_>>())?;
    let input_indices = api.indices(inputs.len())?;
    let output_indices = api.indices(outputs.len())?;
    let procedure = api.number(0)?;
    // SAFETY: `+ (id)requestWithInputs:(NSArray *)inputIndices:(NSArray *)outputs:(NSArray *)
    // outputIndices:(NSArray *)weightsBuffer:(id)perfStats:(id)procedureIndex:(NSNumber *)`
    // called as `id (*)(id, SEL, id, id, id, id, id, id, id)`; all objects are live.
    let request = unsafe {
        let f: unsafe extern "C" fn(Id, Sel, Id, Id, Id, Id, Id, Id, Id) -> Id =
            std::mem::transmute(api.msg_send);
        f(
            api.classes.request.0,
            api.sel(c"requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:"),
            input_array.ptr(),
            input_indices.ptr(),
            output_array.ptr(),
            output_indices.ptr(),
            null_mut(),
            null_mut(),
            procedure.ptr(),
        )
    };
    Obj::retained(api, request, "_ANERequest requestWithInputs:…")
}
