//! Per-parameter optimizer state and the validate-then-update-in-place step loop shared by
//! the optimizers.

use super::ParamGroup;
use crate::checkpoint::StateDict;
use crate::{Error, Result};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use tessera_tensor::{arg_err, shape_err, Backend, Tensor};

/// The state of one parameter: field name → tensor.
pub(crate) type ParamState<B> = BTreeMap<&'static str, Tensor<B>>;

/// The state of every parameter, with the fields an optimizer keeps: `(name, shaped)`, where
/// `shaped` fields have the parameter's shape and dtype and the others are rank-0 F64.
#[derive(Clone, Debug)]
pub(crate) struct State<B: Backend> {
    fields: &'static [(&'static str, bool)],
    map: BTreeMap<String, ParamState<B>>,
}

impl<B: Backend> State<B> {
    pub(crate) fn new(fields: &'static [(&'static str, bool)]) -> Self {
        State {
            fields,
            map: BTreeMap::new(),
        }
    }

    pub(crate) fn to_state_dict(&self) -> StateDict<B> {
        let mut sd = StateDict::new();
        for (name, st) in &self.map {
            for (field, t) in st {
                sd.insert(format!("{name}.{field}"), t.clone());
            }
        }
        sd
    }

    /// Replaces the state with `sd` after checking every key (see
    /// `Optimizer::load_state_dict`).
    pub(crate) fn load(&mut self, groups: &[ParamGroup], sd: &StateDict<B>) -> Result<()> {
        let mut map: BTreeMap<String, ParamState<B>> = BTreeMap::new();
        let mut unexpected = Vec::new();
        for (key, t) in sd {
            let split = key.rsplit_once('.').and_then(|(param, field)| {
                let f = self.fields.iter().find(|(n, _)| *n == field)?;
                groups
                    .iter()
                    .any(|g| g.names.iter().any(|n| n == param))
                    .then_some((param, f))
            });
            match split {
                Some((param, &(field, shaped))) => {
                    if !shaped && t.numel() != 1 {
                        return Err(shape_err!(
                            "load_state_dict",
                            "\"{key}\" must hold one number, got shape {:?}",
                            t.shape()
                        )
                        .into());
                    }
                    map.entry(String::from(param))
                        .or_default()
                        .insert(field, t.clone());
                }
                None => unexpected.push(key.clone()),
            }
        }
        let mut missing = Vec::new();
        for (param, st) in &map {
            for (field, _) in self.fields {
                if !st.contains_key(field) {
                    missing.push(format!("{param}.{field}"));
                }
            }
        }
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(Error::StateDict {
                missing,
                unexpected,
                mismatched: Vec::new(),
            });
        }
        self.map = map;
        Ok(())
    }

    /// Runs `update(name, group, param, grad, state)` for every parameter with a gradient,
    /// in place: `state` is the parameter's entry (empty before its first step), and the
    /// update writes the parameter and its state where they are. Everything a caller can get
    /// wrong (counts, shapes, dtypes, backends of gradients and of loaded state) is checked
    /// before the first write; only a failure of the backend itself can stop a step midway.
    pub(crate) fn apply<F>(
        &mut self,
        op: &'static str,
        groups: &[ParamGroup],
        params: &mut [Tensor<B>],
        grads: &[Option<Tensor<B>>],
        mut update: F,
    ) -> Result<()>
    where
        F: FnMut(&str, &ParamGroup, &mut Tensor<B>, &Tensor<B>, &mut ParamState<B>) -> Result<()>,
    {
        let n: usize = groups.iter().map(|g| g.names.len()).sum();
        if params.len() != n || grads.len() != n {
            return Err(arg_err!(
                op,
                "the optimizer has {n} parameters, got {} parameters and {} gradients",
                params.len(),
                grads.len()
            )
            .into());
        }
        let flat = || {
            groups
                .iter()
                .flat_map(|g| g.names.iter().map(move |name| (g, name)))
        };
        for (i, (_, name)) in flat().enumerate() {
            let p = &params[i];
            if !p.dtype().is_float() {
                return Err(arg_err!(op, "parameter \"{name}\" has dtype {}", p.dtype()).into());
            }
            if let Some(g) = &grads[i] {
                self.check_like(op, name, "its gradient", p, g)?;
            }
            if let Some(st) = self.map.get(name.as_str()) {
                for &(field, shaped) in self.fields {
                    match st.get(field) {
                        Some(t) if shaped => self.check_like(op, name, field, p, t)?,
                        Some(_) => {}
                        None => {
                            return Err(arg_err!(op, "state of \"{name}\" lacks \"{field}\"").into())
                        }
                    }
                }
            }
        }
        for (i, (group, name)) in flat().enumerate() {
            if let Some(g) = &grads[i] {
                let st = self.map.entry(name.clone()).or_default();
                update(name, group, &mut params[i], g, st)?;
            }
        }
        Ok(())
    }

    fn check_like(
        &self,
        op: &'static str,
        name: &str,
        what: &str,
        p: &Tensor<B>,
        t: &Tensor<B>,
    ) -> Result<()> {
        if t.shape() != p.shape() {
            return Err(shape_err!(
                op,
                "parameter \"{name}\" has shape {:?} but {what} has shape {:?}",
                p.shape(),
                t.shape()
            )
            .into());
        }
        if t.dtype() != p.dtype() || t.backend() != p.backend() {
            return Err(arg_err!(
                op,
                "parameter \"{name}\" is {} on {} but {what} is {} on {}",
                p.dtype(),
                p.backend().name(),
                t.dtype(),
                t.backend().name()
            )
            .into());
        }
        Ok(())
    }
}
