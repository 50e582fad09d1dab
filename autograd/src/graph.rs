//! The core of reverse-mode autodiff: read this file first.
//!
//! A [`Var`] is a tensor value plus how it was made. Every op on `Var`s computes its value with
//! the tensor crate and, if some input requires a gradient, records a [`Backward`] struct that
//! holds exactly what the derivative needs (saved inputs, outputs, shapes). The records point
//! at their inputs' graph nodes, so the graph is a DAG of reference-counted nodes owned by its
//! outputs: dropping the outputs frees it.
//!
//! A node holds its value's shape and dtype but not the value: the value lives in the `Var`
//! handles, so an intermediate result nobody holds any more (a pre-bias product, the scores
//! before softmax, a residual branch's output) is freed at once, and the graph keeps only what
//! the `Backward`s saved, as PyTorch's autograd does. Holding every node's value cost 1.8 GB of
//! a DINO ViT-S/16 step's 5.3 GB peak (BENCHMARKS.md, eighth round).
//!
//! [`Var::backward`] walks that DAG once. Each node gets a unique id from a global counter
//! that only grows, and a node's inputs exist before it does, so inputs have smaller ids than
//! their users: visiting nodes in decreasing id order is a topological order. Each node's
//! gradient is complete when it is visited, is handed to its `Backward` (the vector-Jacobian
//! product), and is dropped; only leaf gradients are kept and returned as [`Gradients`].

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use tessera_tensor::shape::Dims;
use tessera_tensor::{Backend, BinaryOp, DType, Error, Layout, Result, Tensor};

use crate::gradients::Gradients;

/// The id counter. Targets without 64-bit atomics (embedded cores, 32-bit microcontrollers)
/// count with pointer-width atomics instead: ids then wrap after 2^32 nodes, which breaks the
/// topological order only for a graph built across that wrap (about 400,000 ViT steps).
#[cfg(target_has_atomic = "64")]
mod ids {
    use core::sync::atomic::{AtomicU64, Ordering};
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    pub(super) fn next() -> u64 {
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    }
}
#[cfg(not(target_has_atomic = "64"))]
mod ids {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
    pub(super) fn next() -> u64 {
        NEXT_ID.fetch_add(1, Ordering::Relaxed) as u64
    }
}

/// The derivative of one op: given the gradient of its output, the gradients of its inputs.
///
/// Implement it to add your own differentiable op, then build the output with
/// [`Var::from_op`]. The struct should own exactly the state the derivative needs.
pub trait Backward<B: Backend>: Send + Sync {
    /// The op's name, for error messages.
    fn name(&self) -> &'static str;

    /// `grad` has the output's shape. Returns one entry per input, in the order given to
    /// [`Var::from_op`], each with that input's shape and dtype; `None` means zero.
    /// `needs[i]` is false when input `i` needs no gradient, so its product can be skipped.
    fn backward(&self, grad: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>>;

    /// For an op with one input whose output is a part of it (narrow, slice, select): that
    /// part's layout, taken from `input`, a layout of the input's shape. When the input
    /// already has a pending contiguous gradient, the graph adds this op's gradient into that
    /// part of it in place instead of calling [`Backward::backward`], whose gradient is zeros
    /// outside the part: the q, k and v of an attention layer, three views of one `qkv`
    /// tensor, then cost one zero tensor of `qkv`'s shape instead of three and two sums.
    /// The default, `None`: always call `backward`.
    fn input_window(&self, input: &Layout) -> Option<Result<Layout>> {
        let _ = input;
        None
    }
}

enum Origin<B: Backend> {
    /// A constant or detached value: no gradient flows into it.
    Constant,
    /// A leaf that requires a gradient (a parameter or an input).
    Leaf,
    /// The result of an op on inputs of which at least one requires a gradient.
    Op(OpRecord<B>),
}

/// How an op's output was made: its inputs and its derivative (with the tensors it saved).
struct OpRecord<B: Backend> {
    inputs: Vec<Arc<Node<B>>>,
    backward: Box<dyn Backward<B>>,
}

/// A value's place in the graph: its id, how it was made, and its shape and dtype (to check
/// the gradients that reach it), but not the value itself.
struct Node<B: Backend> {
    id: u64,
    shape: Dims,
    dtype: DType,
    origin: Origin<B>,
}

impl<B: Backend> Node<B> {
    fn requires_grad(&self) -> bool {
        !matches!(self.origin, Origin::Constant)
    }
}

/// A tensor in the autodiff graph (PyTorch: a `torch.Tensor` with autograd metadata).
/// Cloning is cheap: clones share the node and the value's storage.
pub struct Var<B: Backend> {
    node: Arc<Node<B>>,
    value: Tensor<B>,
}

impl<B: Backend> Clone for Var<B> {
    fn clone(&self) -> Self {
        Var {
            node: self.node.clone(),
            value: self.value.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for Var<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.node.origin {
            Origin::Constant => "constant",
            Origin::Leaf => "leaf",
            Origin::Op(rec) => rec.backward.name(),
        };
        write!(f, "Var#{}({kind}, {:?})", self.node.id, self.value)
    }
}

impl<B: Backend> Var<B> {
    fn new(value: Tensor<B>, origin: Origin<B>) -> Self {
        let node = Node {
            id: ids::next(),
            shape: value.shape().into(),
            dtype: value.dtype(),
            origin,
        };
        Var {
            node: Arc::new(node),
            value,
        }
    }

    /// A value that requires a gradient (PyTorch: `requires_grad=True`).
    pub fn leaf(value: Tensor<B>) -> Self {
        Self::new(value, Origin::Leaf)
    }

    /// A value that never gets a gradient. Ops whose inputs are all constants produce
    /// constants and record nothing: this is PyTorch's `no_grad` mode.
    pub fn constant(value: Tensor<B>) -> Self {
        Self::new(value, Origin::Constant)
    }

    /// The result of a custom op: `value` computed from `inputs`, differentiated by
    /// `backward`. If no input requires a gradient the result is a constant.
    pub fn from_op(value: Tensor<B>, inputs: &[Var<B>], backward: Box<dyn Backward<B>>) -> Self {
        if inputs.iter().any(Var::requires_grad) {
            let inputs = inputs.iter().map(|v| v.node.clone()).collect();
            Self::new(value, Origin::Op(OpRecord { inputs, backward }))
        } else {
            Self::constant(value)
        }
    }

    /// The same value cut from the graph (PyTorch: `detach()`).
    pub fn detach(&self) -> Self {
        Self::constant(self.value.clone())
    }

    /// The tensor value.
    pub fn value(&self) -> &Tensor<B> {
        &self.value
    }

    /// The value for writing in place, if no other `Var` (a clone, or a graph node that used
    /// it as an input) shares this node; `None` otherwise. An optimizer updates parameters
    /// through it once the step's graph is gone.
    pub fn value_mut(&mut self) -> Option<&mut Tensor<B>> {
        Arc::get_mut(&mut self.node)?;
        Some(&mut self.value)
    }

    /// True for leaves and for results of ops on them.
    pub fn requires_grad(&self) -> bool {
        self.node.requires_grad()
    }

    /// True for a [`Var::leaf`].
    pub fn is_leaf(&self) -> bool {
        matches!(self.node.origin, Origin::Leaf)
    }

    /// The unique id that keys [`Gradients`].
    pub fn id(&self) -> u64 {
        self.node.id
    }

    /// Gradients of this one-element output with respect to every leaf it depends on
    /// (PyTorch: `loss.backward(retain_graph=True)`). The graph is kept: calling it again
    /// gives the same result. See [`Var::backward_consume`] to free it on the way.
    pub fn backward(&self) -> Result<Gradients<B>> {
        self.clone().run_backward(None, false)
    }

    /// Like [`Var::backward`], but consumes the output and frees each node's saved tensors
    /// as soon as its derivative has run (PyTorch's default `loss.backward()`), so the
    /// activations of late layers are gone before the early layers' gradients are made.
    /// Nodes that something else still holds (a `Var` kept by the caller) are left intact.
    pub fn backward_consume(self) -> Result<Gradients<B>> {
        self.run_backward(None, true)
    }

    /// Gradients given the gradient of this output, which must match its shape and dtype
    /// (PyTorch: `y.backward(grad)`).
    pub fn backward_with(&self, grad: &Tensor<B>) -> Result<Gradients<B>> {
        self.clone().run_backward(Some(grad.clone()), false)
    }

    fn run_backward(self, grad: Option<Tensor<B>>, consume: bool) -> Result<Gradients<B>> {
        let v = self.value();
        let grad = match grad {
            Some(g) => g,
            None if v.numel() == 1 => v.ones_like()?,
            None => {
                return Err(Error::Shape {
                    op: "backward",
                    msg: alloc::format!(
                        "needs a one-element output, got shape {:?}; use backward_with",
                        v.shape()
                    ),
                })
            }
        };
        if grad.shape() != v.shape() || grad.dtype() != v.dtype() {
            return Err(Error::Shape {
                op: "backward",
                msg: alloc::format!(
                    "output gradient {:?} {} does not match output {:?} {}",
                    grad.shape(),
                    grad.dtype(),
                    v.shape(),
                    v.dtype()
                ),
            });
        }
        if !self.requires_grad() {
            return Err(Error::Argument {
                op: "backward",
                msg: "the output does not require a gradient (all inputs are constants)".into(),
            });
        }
        // Nodes are found lazily: a node's users all have larger ids and reach it before it
        // is popped (by induction from the output), so popping the largest id is a
        // topological order, and `pending[id]` is complete when `id` is popped.
        let Var { node, value } = self;
        drop(value);
        let mut nodes: BTreeMap<u64, Arc<Node<B>>> = BTreeMap::new();
        let mut pending: BTreeMap<u64, Tensor<B>> = BTreeMap::new();
        pending.insert(node.id, grad);
        nodes.insert(node.id, node);
        let mut leaves = Gradients::new();
        while let Some((id, node)) = nodes.pop_last() {
            let Some(g) = pending.remove(&id) else {
                continue;
            };
            // Consuming: own the node if nothing else holds it, to free it after use.
            let owned = match consume {
                true => Arc::try_unwrap(node),
                false => Err(node),
            };
            match owned {
                Ok(node) => match node.origin {
                    Origin::Constant => {}
                    Origin::Leaf => leaves.insert(id, g.contiguous()?),
                    Origin::Op(mut rec) => {
                        if add_in_window(&rec, &rec.inputs, &g, &mut pending)? {
                            continue;
                        }
                        let inputs = core::mem::take(&mut rec.inputs);
                        let grads = run_op(&rec, &inputs, &g)?;
                        drop(rec); // the saved tensors go now
                        propagate(&mut nodes, &mut pending, inputs, grads)?;
                    }
                },
                Err(node) => match &node.origin {
                    Origin::Constant => {}
                    Origin::Leaf => leaves.insert(id, g.contiguous()?),
                    Origin::Op(rec) => {
                        if add_in_window(rec, &rec.inputs, &g, &mut pending)? {
                            continue;
                        }
                        let grads = run_op(rec, &rec.inputs, &g)?;
                        let inputs = rec.inputs.clone();
                        propagate(&mut nodes, &mut pending, inputs, grads)?;
                    }
                },
            }
        }
        Ok(leaves)
    }
}

/// Runs one op's derivative and checks that it returned one gradient per input.
fn run_op<B: Backend>(
    rec: &OpRecord<B>,
    inputs: &[Arc<Node<B>>],
    g: &Tensor<B>,
) -> Result<Vec<Option<Tensor<B>>>> {
    let needs: Vec<bool> = inputs.iter().map(|n| n.requires_grad()).collect();
    let name = rec.backward.name();
    let grads =
        crate::profile::backward_op(g.backend(), name, || rec.backward.backward(g, &needs))?;
    if grads.len() != inputs.len() {
        return Err(Error::Argument {
            op: rec.backward.name(),
            msg: alloc::format!(
                "backward returned {} gradients for {} inputs",
                grads.len(),
                inputs.len()
            ),
        });
    }
    for (input, gi) in inputs.iter().zip(&grads) {
        if let (true, Some(gi)) = (input.requires_grad(), gi) {
            check_grad(rec.backward.name(), input, gi)?;
        }
    }
    Ok(grads)
}

/// For an op whose output is a window of its one input ([`Backward::input_window`]) when the
/// input already has a pending contiguous gradient: adds `g` into that window of it in place
/// and returns true (the input is already scheduled). Else returns false, and the op's
/// `backward` runs. The sums are those of adding the zero-padded gradient, except that a
/// `-0.0` outside the window stays `-0.0` (the padded sum adds `+0.0` to it).
fn add_in_window<B: Backend>(
    rec: &OpRecord<B>,
    inputs: &[Arc<Node<B>>],
    g: &Tensor<B>,
    pending: &mut BTreeMap<u64, Tensor<B>>,
) -> Result<bool> {
    let [input] = inputs else {
        return Ok(false);
    };
    let Some(prev) = pending.get_mut(&input.id) else {
        return Ok(false);
    };
    let fits = input.requires_grad()
        && prev.shape() == &input.shape[..]
        && prev.dtype() == g.dtype()
        && prev.is_contiguous();
    let window = match fits {
        true => rec.backward.input_window(prev.layout()),
        false => None,
    };
    let Some(window) = window else {
        return Ok(false);
    };
    let window = window?;
    #[cfg(test)]
    WINDOW_ADDS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    crate::profile::backward_op(g.backend(), "add in window", || {
        prev.binary_in_window_(BinaryOp::Add, |_| Ok(window), g)
    })
    .map_err(|e| match e {
        Error::Shape { msg, .. } => Error::Shape {
            op: rec.backward.name(),
            msg,
        },
        e => e,
    })?;
    Ok(true)
}

/// How many gradients [`add_in_window`] added in place (for the tests).
#[cfg(test)]
static WINDOW_ADDS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Adds each input's gradient to its pending sum and schedules the input.
fn propagate<B: Backend>(
    nodes: &mut BTreeMap<u64, Arc<Node<B>>>,
    pending: &mut BTreeMap<u64, Tensor<B>>,
    inputs: Vec<Arc<Node<B>>>,
    grads: Vec<Option<Tensor<B>>>,
) -> Result<()> {
    for (input, gi) in inputs.into_iter().zip(grads) {
        if let (true, Some(gi)) = (input.requires_grad(), gi) {
            accumulate(pending, input.id, gi)?;
            nodes.entry(input.id).or_insert(input);
        }
    }
    Ok(())
}

/// A backward that returns a gradient of the wrong shape or dtype is a bug in that op: say so
/// here rather than fail later in an unrelated op.
fn check_grad<B: Backend>(op: &'static str, input: &Node<B>, g: &Tensor<B>) -> Result<()> {
    if g.shape() != &input.shape[..] || g.dtype() != input.dtype {
        return Err(Error::Shape {
            op,
            msg: alloc::format!(
                "backward produced a gradient {:?} {} for an input {:?} {}",
                g.shape(),
                g.dtype(),
                &input.shape[..],
                input.dtype
            ),
        });
    }
    Ok(())
}

/// A var used several times receives the sum of the gradients of its uses, added in place
/// into whichever of the pending and the arriving gradient nothing else holds (see [`owned`]),
/// else out of place: a gradient an op handed to several inputs (a residual add's) is shared,
/// and `binary_` on it would copy it first. Addition commutes bit for bit, so the sum is the
/// same whichever operand receives it.
fn accumulate<B: Backend>(map: &mut BTreeMap<u64, Tensor<B>>, id: u64, g: Tensor<B>) -> Result<()> {
    match map.get_mut(&id) {
        Some(prev) if prev.shape() == g.shape() => {
            if owned(prev) {
                prev.binary_(BinaryOp::Add, &g)
            } else if owned(&g) && g.dtype() == prev.dtype() {
                let mut sum = g;
                sum.binary_(BinaryOp::Add, prev)?;
                *prev = sum;
                Ok(())
            } else {
                *prev = prev.add(&g)?;
                Ok(())
            }
        }
        Some(prev) => {
            *prev = prev.add(&g)?;
            Ok(())
        }
        None => {
            map.insert(id, g);
            Ok(())
        }
    }
}

/// Whether in-place arithmetic on `t` writes its storage without copying it first: nothing
/// else holds the storage and `t` is a plain contiguous view of it.
fn owned<B: Backend>(t: &Tensor<B>) -> bool {
    Arc::strong_count(t.storage()) == 1 && Arc::weak_count(t.storage()) == 0 && t.is_contiguous()
}

impl<B: Backend> Drop for OpRecord<B> {
    /// Frees a long chain of nodes with a loop instead of recursion, so that dropping a deep
    /// graph cannot overflow the stack.
    fn drop(&mut self) {
        let mut stack = core::mem::take(&mut self.inputs);
        while let Some(node) = stack.pop() {
            if let Ok(node) = Arc::try_unwrap(node) {
                if let Origin::Op(mut rec) = node.origin {
                    stack.append(&mut rec.inputs);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
