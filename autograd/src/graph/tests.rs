use crate::test_util::rand;
use crate::Var;
use alloc::sync::Arc;
use tessera_tensor::{Cpu, DType, Tensor};

fn vals(t: &Tensor<Cpu>) -> alloc::vec::Vec<f64> {
    t.to_vec::<f64>().unwrap()
}

#[test]
fn leaf_gradients_accumulate_over_uses() {
    let x = Var::leaf(Tensor::from_vec(alloc::vec![1.0f64, 2.0], &[2], &Cpu).unwrap());
    // y = sum(x*x + 3x) -> dy/dx = 2x + 3
    let y = x.mul(&x).unwrap().add(&x.mul_scalar(3.0).unwrap()).unwrap();
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(vals(g.get(&x).unwrap()), [5.0, 7.0]);
    assert_eq!(g.len(), 1);
    assert_eq!(g.iter().next().unwrap().0, x.id());
}

/// A residual block's gradient reaches its input twice, once as the very tensor the add
/// handed to both of its inputs (shared) and once freshly made; and `x + x` hands the same
/// tensor to one var twice. Each way the sum is right and no shared gradient is written.
#[test]
fn shared_and_owned_gradients_sum_without_aliasing() {
    let x = Var::leaf(Tensor::from_vec(alloc::vec![1.0f64, -2.0], &[2], &Cpu).unwrap());
    // y = sum(3x + x) -> 4; the add gives the same gradient tensor to `3x` and to `x`.
    let y = x.mul_scalar(3.0).unwrap().add(&x).unwrap();
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(vals(g.get(&x).unwrap()), [4.0, 4.0]);
    // y = sum((x + x) * (x + x)) -> 8x: both uses of `x` receive one shared tensor.
    let s = x.add(&x).unwrap();
    let g = s
        .mul(&s)
        .unwrap()
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(vals(g.get(&x).unwrap()), [8.0, -16.0]);
    // y = sum(x + exp(x)): the second gradient (exp's, owned) takes the first (shared).
    let y = x.add(&x.exp().unwrap()).unwrap();
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    let want: alloc::vec::Vec<f64> = [1.0f64, -2.0].iter().map(|v| 1.0 + v.exp()).collect();
    assert_eq!(vals(g.get(&x).unwrap()), want);
}

#[test]
fn backward_can_run_twice_and_keeps_only_leaves() {
    let (a, b) = (Var::leaf(rand(&[3], 1)), Var::leaf(rand(&[3], 2)));
    let mid = a.mul(&b).unwrap();
    let y = mid.exp().unwrap().sum(&[], false).unwrap();
    let g1 = y.backward().unwrap();
    let mut g2 = y.backward().unwrap();
    assert_eq!(vals(g1.get(&a).unwrap()), vals(g2.get(&a).unwrap()));
    assert!(
        g1.get(&mid).is_none(),
        "intermediate gradients are not kept"
    );
    assert!(g2.remove(&b).is_some() && g2.get(&b).is_none());
}

#[test]
fn detach_and_constants_stop_gradients() {
    let x = Var::leaf(rand(&[2], 3));
    let c = Var::constant(rand(&[2], 4));
    let y = x.mul(&x.detach()).unwrap().add(&c).unwrap();
    assert!(y.requires_grad() && !c.requires_grad() && x.is_leaf());
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    // d/dx (x * stop(x)) = stop(x) = x
    assert_eq!(vals(g.get(&x).unwrap()), vals(x.value()));
    assert!(g.get(&c).is_none());
}

#[test]
fn output_gradient_is_checked() {
    let x = Var::leaf(rand(&[2, 3], 5));
    let y = x.tanh().unwrap();
    let e = y.backward().unwrap_err();
    assert!(alloc::format!("{e}").contains("[2, 3]"), "{e}");
    let e = y.backward_with(&rand(&[3, 2], 6)).unwrap_err();
    assert!(alloc::format!("{e}").contains("[3, 2]"), "{e}");
    let f32_grad = rand(&[2, 3], 7).to_dtype(DType::F32).unwrap();
    assert!(y.backward_with(&f32_grad).is_err());
    let g = y.backward_with(&rand(&[2, 3], 8)).unwrap();
    assert_eq!(g.get(&x).unwrap().shape(), [2, 3]);
}

#[test]
fn graph_is_freed_with_its_outputs() {
    let x = Var::leaf(rand(&[4], 9));
    let mid = x.exp().unwrap();
    let weak = Arc::downgrade(&mid.node);
    let y = mid.mul(&x).unwrap().sum(&[], false).unwrap();
    drop(mid);
    y.backward().unwrap();
    assert!(weak.upgrade().is_some(), "the output keeps its graph alive");
    assert_eq!(
        Arc::strong_count(&x.node),
        3,
        "x is an input of exp and mul"
    );
    drop(y);
    assert!(
        weak.upgrade().is_none(),
        "dropping the output frees the graph"
    );
    assert_eq!(Arc::strong_count(&x.node), 1);
}

#[test]
fn the_graph_keeps_saved_tensors_not_every_value() {
    // exp saves its output; the sum of (x + 1) saves nothing of its input's value. So once
    // the caller drops `shifted` and `e`, the graph still holds exp's output (saved for its
    // derivative) but not `shifted`'s value, which nothing needs any more.
    let x = Var::leaf(rand(&[4], 11));
    let shifted = x.add_scalar(1.0).unwrap();
    let e = shifted.exp().unwrap();
    let shifted_storage = Arc::downgrade(shifted.value().storage());
    let e_storage = Arc::downgrade(e.value().storage());
    let y = e.sum(&[], false).unwrap();
    drop((shifted, e));
    assert!(
        shifted_storage.upgrade().is_none(),
        "an intermediate value nobody saved is freed with its last Var"
    );
    assert!(e_storage.upgrade().is_some(), "exp's saved output stays");
    let g = y.backward().unwrap();
    let expected: Vec<f64> = vals(x.value()).iter().map(|v| (v + 1.0).exp()).collect();
    assert_eq!(vals(g.get(&x).unwrap()), expected);
}

#[test]
fn deep_chains_backprop_and_drop_without_recursion() {
    let x = Var::leaf(Tensor::from_vec(alloc::vec![0.5f64], &[1], &Cpu).unwrap());
    let mut y = x.clone();
    for _ in 0..20_000 {
        y = y.add_scalar(1e-3).unwrap();
    }
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(vals(g.get(&x).unwrap()), [1.0]);
    drop(y); // 20k nested nodes: a recursive drop would risk the stack
}

#[test]
fn vars_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Var<Cpu>>();
    send_sync::<crate::Gradients<Cpu>>();
}

/// A small CNN classifier through most op families: checked by finite differences (fast
/// mode) in f64, and run in f32 to show the backward passes keep the input dtype.
fn tiny_cnn(v: &[Var<Cpu>], targets: &Tensor<Cpu>) -> tessera_tensor::Result<Var<Cpu>> {
    use tessera_tensor::{ConvOptions, Pool2dOptions};
    let h = v[0].conv2d(&v[1], Some(&v[2]), &ConvOptions::new(1, 1))?;
    let (h, _) = h.batch_norm_train(None, None, 1e-5)?;
    let h = h.gelu()?.max_pool2d(&Pool2dOptions::new(2, 2, 0))?;
    let logits = h.flatten(1, -1)?.matmul(&v[3])?;
    crate::cross_entropy(&logits, targets)
}

#[test]
fn end_to_end_small_network() {
    let targets = Tensor::from_slice(&[1i64, 0, 2], &[3], &Cpu).unwrap();
    let inputs = [
        rand(&[3, 2, 4, 4], 20),
        rand(&[3, 2, 3, 3], 21),
        rand(&[3], 22),
        rand(&[12, 3], 23),
    ];
    let opts = crate::GradcheckOptions {
        fast_mode: true,
        ..Default::default()
    };
    crate::gradcheck(|v| tiny_cnn(v, &targets), &inputs, &opts).unwrap();

    let leaves64: alloc::vec::Vec<Var<Cpu>> = inputs.iter().cloned().map(Var::leaf).collect();
    let leaves32: alloc::vec::Vec<Var<Cpu>> = inputs
        .iter()
        .map(|t| Var::leaf(t.to_dtype(DType::F32).unwrap()))
        .collect();
    let g64 = tiny_cnn(&leaves64, &targets).unwrap().backward().unwrap();
    let g32 = tiny_cnn(&leaves32, &targets).unwrap().backward().unwrap();
    for (a, b) in leaves64.iter().zip(&leaves32) {
        let (ga, gb) = (g64.get(a).unwrap(), g32.get(b).unwrap());
        assert_eq!(gb.dtype(), DType::F32);
        for (x, y) in vals(ga).iter().zip(gb.to_f64_vec().unwrap()) {
            assert!((x - y).abs() < 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }
}

#[test]
fn backward_consume_frees_saved_tensors_and_agrees_with_backward() {
    let (a, b) = (Var::leaf(rand(&[3], 1)), Var::leaf(rand(&[3], 2)));
    let build = || {
        let mid = a.mul(&b).unwrap();
        let e = mid.exp().unwrap(); // saves its output
        (e.sum(&[], false).unwrap(), e.value().clone())
    };
    let (y, kept) = build();
    let expected = y.backward().unwrap();
    drop(y);
    let (y, saved) = build();
    // The exp output is held by the exp backward's saved copy and by `saved` (its `Var` is
    // gone: graph nodes do not hold values).
    assert_eq!(Arc::strong_count(saved.storage()), 2);
    let got = y.backward_consume().unwrap();
    assert_eq!(
        Arc::strong_count(saved.storage()),
        1,
        "graph still holds the value"
    );
    for v in [&a, &b] {
        assert_eq!(vals(got.get(v).unwrap()), vals(expected.get(v).unwrap()));
    }
    drop(kept);
}

#[test]
fn backward_consume_keeps_nodes_the_caller_holds() {
    let x = Var::leaf(rand(&[4], 3));
    let mid = x.exp().unwrap();
    let y = mid.mul_scalar(2.0).unwrap().sum(&[], false).unwrap();
    let g = y.backward_consume().unwrap();
    assert_eq!(
        vals(g.get(&x).unwrap()),
        vals(&mid.value().mul_scalar(2.0).unwrap())
    );
    // `mid` is intact and still differentiable.
    let g2 = mid.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(vals(g2.get(&x).unwrap()), vals(mid.value()));
}

/// Views of one input (attention's q, k, v; a CLS token and the patch tokens) add their
/// gradients into the input's pending gradient in place. The sums are the zero-padded ones:
/// checked against the same function written with whole-tensor ops, with the input also
/// used whole (before and after the views in the graph), through a transposed (non-contiguous)
/// pending gradient, and through a narrow with a step.
#[test]
fn views_add_their_gradients_in_place() {
    let x = rand(&[3, 4, 5], 11);
    let w = [rand(&[4, 5], 12), rand(&[4, 5], 13), rand(&[4, 5], 14)];
    let u = rand(&[3, 4, 5], 15);
    let via_views = |x: &Var<Cpu>| -> tessera_tensor::Result<Var<Cpu>> {
        let whole = x.mul(&Var::constant(u.clone()))?.sum(&[], false)?;
        let t = x.transpose(0, 2)?.mul_scalar(0.5)?.sum(&[], false)?;
        let mut acc = whole.add(&t)?;
        for (i, wi) in w.iter().enumerate() {
            let part = x.select(0, i)?.mul(&Var::constant(wi.clone()))?;
            acc = acc.add(&part.sum(&[], false)?)?;
        }
        // Every other column of the last axis: the first view reached in backward.
        let strided = x.slice(2, 0, 5, 2)?.sum(&[], false)?;
        acc.add(&strided)
    };
    let xv = Var::leaf(x.clone());
    let before = super::WINDOW_ADDS.load(core::sync::atomic::Ordering::Relaxed);
    let got = via_views(&xv).unwrap().backward().unwrap();
    let added = super::WINDOW_ADDS.load(core::sync::atomic::Ordering::Relaxed) - before;
    // The slice (reached first) is padded; the three selects are added in place (other
    // tests running at the same time may add more).
    assert!(added >= 3, "{added} in-place window adds");
    // Expected: u + stack(w) + 1 on the even columns + 0.5.
    let stacked: alloc::vec::Vec<f64> = w.iter().flat_map(vals).collect();
    let want: alloc::vec::Vec<f64> = vals(&u)
        .iter()
        .zip(&stacked)
        .enumerate()
        .map(|(i, (a, b))| a + b + if (i % 5) % 2 == 0 { 1.0 } else { 0.0 } + 0.5)
        .collect();
    let g = vals(got.get(&xv).unwrap());
    assert_eq!(g.len(), want.len());
    for (a, b) in g.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // And against finite differences.
    crate::test_util::check(|v| via_views(&v[0]), &[x]);
}
