//! Per-parameter optimizer state and the all-or-nothing step loop shared by the optimizers.

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

    /// Runs `update(group, param, grad, state)` for every parameter with a gradient and commits
    /// the new parameters and states only if all succeed. Shapes, dtypes and backends of the
    /// gradients and of the existing state are checked first.
    pub(crate) fn apply<F>(
        &mut self,
        op: &'static str,
        groups: &[ParamGroup],
        params: &mut [Tensor<B>],
        grads: &[Option<Tensor<B>>],
        mut update: F,
    ) -> Result<()>
    where
        F: FnMut(
            &str,
            &ParamGroup,
            &Tensor<B>,
            &Tensor<B>,
            Option<&ParamState<B>>,
        ) -> Result<Update<B>>,
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
        let mut updates = Vec::new();
        for (i, (group, name)) in flat().enumerate() {
            if let Some(g) = &grads[i] {
                let u = update(name, group, &params[i], g, self.map.get(name.as_str()))?;
                updates.push((i, name, u));
            }
        }
        for (i, name, (p, st)) in updates {
            params[i] = p;
            self.map.insert(name.clone(), st);
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

/// What an update returns: the new parameter and its new state.
pub(crate) type Update<B> = (Tensor<B>, ParamState<B>);
