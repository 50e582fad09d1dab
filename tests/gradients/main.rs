//! The gradient-correctness suite: every differentiable op of Tessera, and the layers and
//! objectives built from them, checked against finite differences (`gradcheck`, f64) on
//! proptest-generated shapes and on contiguous, transposed, strided and broadcast (expanded)
//! inputs; plus every differentiable case of `tests/fixtures/tensor_ops.safetensors` against
//! PyTorch's gradients. See `tests/README.md`; run with `cargo test --test gradients`.
//!
//! One test binary (compile time matters), one module per op family:
//!
//! | module | checks |
//! |---|---|
//! | `support` | shared machinery: domains, layouts, strategies, `check`/`check_fast` |
//! | `unary` | elementwise functions of one input, scalar ops, casts |
//! | `binary` | broadcasting binary ops, `where_cond` |
//! | `reduce` | sum, mean, max, min, var over random axis sets |
//! | `matmul` | batched, broadcast, transposed and 1-D operands |
//! | `views` | every view op |
//! | `nn_ops` | softmax, norms, conv, pooling, resizing, indexing, joining, padding, losses |
//! | `compositions` | linear, attention, ViT block, conv-bn-relu-pool, cross-entropy |
//! | `fixtures_grads` | gradients against PyTorch's (`torch.autograd`, f64) |

#[path = "../../tensor/tests/common/fixtures.rs"]
mod fixtures;

mod binary;
mod compositions;
mod fixtures_grads;
mod matmul;
mod nn_ops;
mod reduce;
mod support;
mod unary;
mod views;
