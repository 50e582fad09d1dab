//! The network ops: softmax, layer and batch norm, convolution, pooling, bicubic resizing,
//! indexing, joining and splitting, padding and the cross-entropy losses. Arguments (axes,
//! strides, paddings, groups, indices...) are drawn from each case's seed; every float
//! argument comes in a random layout.

use crate::support::*;
use proptest::prelude::*;
use tessera::autograd::{cross_entropy, cross_entropy_probs};
use tessera::tensor::{ConvOptions, Pool2dOptions};

/// A random shape and an input of it in a random layout.
fn any_input() -> impl Strategy<Value = Input> {
    shape().prop_flat_map(|s| input(s, Domain::Any))
}

/// A random shape, an input of it in a random layout and one of its axes.
fn with_axis() -> impl Strategy<Value = (Input, isize)> {
    shape().prop_flat_map(|s| (input(s.clone(), Domain::Any), axis(s.len())))
}

/// An index tensor of `shape` with values in `0..bound`.
fn random_indices(shape: &[usize], bound: usize, g: &mut Gen) -> T {
    let n = shape.iter().product();
    indices((0..n).map(|_| g.below(bound) as i64).collect(), shape)
}

/// An axis as `a` or `a - rank`.
fn signed(axis: usize, rank: usize, g: &mut Gen) -> isize {
    if g.coin() {
        axis as isize
    } else {
        axis as isize - rank as isize
    }
}

proptest! {
    #![proptest_config(config(32))]

    // ------------------------------------------------------------------ softmax

    #[test]
    fn softmax((x, axis) in with_axis()) {
        check(&format!("softmax({axis})"), |v| v[0].softmax(axis), &[x]);
    }

    #[test]
    fn log_softmax((x, axis) in with_axis()) {
        check(&format!("log_softmax({axis})"), |v| v[0].log_softmax(axis), &[x]);
    }

    // ------------------------------------------------------------------ normalization

    /// Over the trailing 1..=rank dims; weight and bias each present or not.
    #[test]
    fn layer_norm(x in any_input(), seed in any::<u64>(), lw in layout(), lb in layout()) {
        let mut g = Gen::new(seed);
        let r = x.shape.len();
        let ns = x.shape[r - 1 - g.below(r)..].to_vec();
        let (has_w, has_b) = (g.coin(), g.coin());
        let mut inputs = vec![x];
        if has_w {
            inputs.push(Input::build(&ns, lw, &Domain::Any, g.next_u64()));
        }
        if has_b {
            inputs.push(Input::build(&ns, lb, &Domain::Any, g.next_u64()));
        }
        let f = |v: &[V]| {
            let w = has_w.then(|| &v[1]);
            let b = has_b.then(|| &v[1 + has_w as usize]);
            v[0].layer_norm(&ns, w, b, 1e-5)
        };
        check(&format!("layer_norm({ns:?}, weight: {has_w}, bias: {has_b})"), f, &inputs);
    }

    /// `[n, c, ..]` of rank 2-4 with at least two values per channel.
    #[test]
    fn batch_norm_train(
        s in shape_in(2..=4, 1..=4),
        lx in layout(), lw in layout(), lb in layout(),
        seed in any::<u64>(),
    ) {
        let per_channel: usize = s.iter().product::<usize>() / s[1];
        prop_assume!(per_channel >= 2);
        let mut g = Gen::new(seed);
        let affine = g.coin();
        let c = s[1];
        let mut inputs = vec![Input::build(&s, lx, &Domain::Any, g.next_u64())];
        if affine {
            inputs.push(Input::build(&[c], lw, &Domain::Any, g.next_u64()));
            inputs.push(Input::build(&[c], lb, &Domain::Any, g.next_u64()));
        }
        let f = |v: &[V]| {
            let (w, b) = if affine { (Some(&v[1]), Some(&v[2])) } else { (None, None) };
            Ok(v[0].batch_norm_train(w, b, 1e-5)?.0)
        };
        check(&format!("batch_norm_train(affine: {affine})"), f, &inputs);
    }

    /// Running statistics are constants: only the affine map and the scale by rstd remain.
    #[test]
    fn batch_norm_eval(
        s in shape_in(2..=4, 1..=4),
        lx in layout(), lw in layout(), lb in layout(),
        seed in any::<u64>(),
    ) {
        let mut g = Gen::new(seed);
        let c = s[1];
        let mean = random(&[c], &Domain::Any, g.next_u64());
        let var = random(&[c], &Domain::Range(0.2, 2.0), g.next_u64());
        let affine = g.coin();
        let mut inputs = vec![Input::build(&s, lx, &Domain::Any, g.next_u64())];
        if affine {
            inputs.push(Input::build(&[c], lw, &Domain::Any, g.next_u64()));
            inputs.push(Input::build(&[c], lb, &Domain::Any, g.next_u64()));
        }
        let f = |v: &[V]| {
            let (w, b) = if affine { (Some(&v[1]), Some(&v[2])) } else { (None, None) };
            v[0].batch_norm_eval(&mean, &var, w, b, 1e-5)
        };
        check(&format!("batch_norm_eval(affine: {affine})"), f, &inputs);
    }

    // ------------------------------------------------------------------ convolution

    /// Random groups (1, 2 or depthwise with a channel multiplier), kernel, stride, padding
    /// and dilation per axis; bias or not.
    #[test]
    fn conv2d(seed in any::<u64>(), lx in layout(), lw in layout(), lb in layout()) {
        let mut g = Gen::new(seed);
        let (groups, cin, cout) = match g.below(3) {
            0 => (1, 1 + g.below(3), 1 + g.below(3)),
            1 => (2, 2 * (1 + g.below(2)), 2 * (1 + g.below(2))),
            _ => {
                let c = 1 + g.below(3);
                (c, c, c * (1 + g.below(2)))
            }
        };
        let mut o = ConvOptions { groups, ..ConvOptions::default() };
        let mut kernel = [0; 2];
        let mut hw = [0; 2];
        for a in 0..2 {
            kernel[a] = 1 + g.below(3);
            o.stride[a] = 1 + g.below(2);
            o.padding[a] = g.below(3);
            o.dilation[a] = 1 + g.below(2);
            let reach = (kernel[a] - 1) * o.dilation[a] + 1;
            hw[a] = reach.saturating_sub(2 * o.padding[a]).max(1) + g.below(4);
        }
        let n = 1 + g.below(2);
        let has_bias = g.coin();
        let mut inputs = vec![
            Input::build(&[n, cin, hw[0], hw[1]], lx, &Domain::Any, g.next_u64()),
            Input::build(
                &[cout, cin / groups, kernel[0], kernel[1]],
                lw,
                &Domain::Any,
                g.next_u64(),
            ),
        ];
        if has_bias {
            inputs.push(Input::build(&[cout], lb, &Domain::Any, g.next_u64()));
        }
        let f = |v: &[V]| v[0].conv2d(&v[1], v.get(2), &o);
        check(&format!("conv2d({o:?}, bias: {has_bias})"), f, &inputs);
    }

    // ------------------------------------------------------------------ pooling

    /// Distinct values, so that no window has a tie (an expanded input's copies of one value
    /// are the same variable, which is fine).
    #[test]
    fn max_pool2d(seed in any::<u64>(), l in layout()) {
        let mut g = Gen::new(seed);
        let (o, shape) = pool_case(&mut g, true);
        let x = Input::build(&shape, l, &Domain::Distinct, g.next_u64());
        let n = shape.iter().product();
        prop_assume!(tensor(vec![0.0; n], &shape).pool2d_params(&o).is_ok());
        check(&format!("max_pool2d({o:?})"), |v| v[0].max_pool2d(&o), &[x]);
    }

    #[test]
    fn avg_pool2d(seed in any::<u64>(), l in layout(), count_pad in any::<bool>()) {
        let mut g = Gen::new(seed);
        let (mut o, shape) = pool_case(&mut g, false);
        o.count_include_pad = count_pad;
        let x = Input::build(&shape, l, &Domain::Any, g.next_u64());
        check(&format!("avg_pool2d({o:?})"), |v| v[0].avg_pool2d(&o), &[x]);
    }

    /// Output sizes that do not divide the input (and larger than it).
    #[test]
    fn adaptive_avg_pool2d(seed in any::<u64>(), l in layout()) {
        let mut g = Gen::new(seed);
        let shape = [1 + g.below(2), 1 + g.below(2), 1 + g.below(7), 1 + g.below(7)];
        let out = [1 + g.below(5), 1 + g.below(5)];
        let x = Input::build(&shape, l, &Domain::Any, g.next_u64());
        check(&format!("adaptive_avg_pool2d({out:?})"), |v| v[0].adaptive_avg_pool2d(out), &[x]);
    }

    /// By output size or by scale factor, up or down, align_corners both ways.
    #[test]
    fn interpolate_bicubic(seed in any::<u64>(), l in layout(), align in any::<bool>()) {
        let mut g = Gen::new(seed);
        let shape = [1 + g.below(2), 1 + g.below(2), 1 + g.below(5), 1 + g.below(5)];
        let (size, scale) = if g.coin() {
            (Some([1 + g.below(7), 1 + g.below(7)]), None)
        } else {
            let mut f = [0.0; 2];
            for a in 0..2 {
                // floor(in * f) >= 1
                f[a] = (g.uniform(0.4, 2.6) * 8.0).round() / 8.0;
                f[a] = f[a].max(1.0 / shape[2 + a] as f64);
            }
            (None, Some(f))
        };
        let x = Input::build(&shape, l, &Domain::Any, g.next_u64());
        check(
            &format!("interpolate_bicubic(size {size:?}, scale {scale:?}, align_corners {align})"),
            |v| v[0].interpolate_bicubic(size, scale, align),
            &[x],
        );
    }

    // ------------------------------------------------------------------ indexing

    /// A 1-D index with repeats (their gradients add up).
    #[test]
    fn index_select(x in any_input(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let r = x.shape.len();
        let axis = g.below(r);
        let len = 1 + g.below(5);
        let index = random_indices(&[len], x.shape[axis], &mut g);
        let ax = signed(axis, r, &mut g);
        check(&format!("index_select({ax})"), |v| v[0].index_select(ax, &index), &[x]);
    }

    /// An index no larger than the input outside the axis, any length along it.
    #[test]
    fn gather(x in any_input(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let r = x.shape.len();
        let axis = g.below(r);
        let ishape: Vec<usize> = (0..r)
            .map(|d| if d == axis { 1 + g.below(5) } else { 1 + g.below(x.shape[d]) })
            .collect();
        let index = random_indices(&ishape, x.shape[axis], &mut g);
        let ax = signed(axis, r, &mut g);
        check(&format!("gather({ax}, index {ishape:?})"), |v| v[0].gather(ax, &index), &[x]);
    }

    /// Gradients for both `self` and `src`; `src` may be larger than the index (its extra
    /// elements get zero gradient).
    #[test]
    fn scatter_add(s in shape(), seed in any::<u64>(), ls in layout(), lsrc in layout()) {
        let mut g = Gen::new(seed);
        let r = s.len();
        let axis = g.below(r);
        let ishape: Vec<usize> = (0..r)
            .map(|d| if d == axis { 1 + g.below(5) } else { 1 + g.below(s[d]) })
            .collect();
        let src_shape: Vec<usize> = ishape.iter().map(|&d| d + g.below(2)).collect();
        let index = random_indices(&ishape, s[axis], &mut g);
        let ax = signed(axis, r, &mut g);
        let inputs = [
            Input::build(&s, ls, &Domain::Any, g.next_u64()),
            Input::build(&src_shape, lsrc, &Domain::Any, g.next_u64()),
        ];
        check(
            &format!("scatter_add({ax}, index {ishape:?})"),
            |v| v[0].scatter_add(ax, &index, &v[1]),
            &inputs,
        );
    }

    // ------------------------------------------------------------------ joining, padding

    /// Two or three inputs differing along the axis; one of them used twice.
    #[test]
    fn cat(s in shape(), seed in any::<u64>(), ls in prop::collection::vec(layout(), 3)) {
        let mut g = Gen::new(seed);
        let r = s.len();
        let axis = g.below(r);
        let count = 2 + g.below(2);
        let inputs: Vec<Input> = (0..count)
            .map(|k| {
                let mut sk = s.clone();
                sk[axis] = 1 + g.below(3);
                Input::build(&sk, ls[k], &Domain::Any, g.next_u64())
            })
            .collect();
        let ax = signed(axis, r, &mut g);
        let f = |v: &[V]| {
            let mut parts = v.to_vec();
            parts.push(v[0].clone());
            V::cat(&parts, ax)
        };
        check(&format!("cat({ax})"), f, &inputs);
    }

    #[test]
    fn stack(
        s in shape_in(1..=3, 1..=4),
        seed in any::<u64>(),
        ls in prop::collection::vec(layout(), 3),
    ) {
        let mut g = Gen::new(seed);
        let axis = g.below(s.len() + 1);
        let count = 1 + g.below(3);
        let inputs: Vec<Input> = (0..count)
            .map(|k| Input::build(&s, ls[k], &Domain::Any, g.next_u64()))
            .collect();
        let ax = signed(axis, s.len() + 1, &mut g);
        check(&format!("stack({ax})"), |v| V::stack(v, ax), &inputs);
    }

    /// Pieces weighted by their position and joined back, so each piece's gradient differs.
    #[test]
    fn split_and_chunk(x in any_input(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let r = x.shape.len();
        let axis = g.below(r);
        let d = x.shape[axis];
        let ax = signed(axis, r, &mut g);
        let size = 1 + g.below(d);
        let chunks = 1 + g.below(4);
        let mut sizes = Vec::new();
        let mut left = d;
        while left > 0 {
            let s = 1 + g.below(left);
            sizes.push(s);
            left -= s;
        }
        let rejoin = |pieces: Vec<V>| {
            let scaled = pieces
                .iter()
                .enumerate()
                .map(|(i, p)| p.mul_scalar(i as f64 + 1.0))
                .collect::<tessera::tensor::Result<Vec<V>>>()?;
            V::cat(&scaled, ax)
        };
        let x = std::slice::from_ref(&x);
        check(&format!("split({size}, {ax})"), |v| rejoin(v[0].split(size, ax)?), x);
        check(&format!("chunk({chunks}, {ax})"), |v| rejoin(v[0].chunk(chunks, ax)?), x);
        let name = format!("split_sizes({sizes:?}, {ax})");
        check(&name, |v| rejoin(v[0].split_sizes(&sizes, ax)?), x);
    }

    /// `(before, after)` pairs for the last 1..=rank dims.
    #[test]
    fn pad(x in any_input(), seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let dims = 1 + g.below(x.shape.len());
        let pads: Vec<usize> = (0..2 * dims).map(|_| g.below(3)).collect();
        let value = g.uniform(-1.0, 1.0);
        check(&format!("pad({pads:?}, {value})"), |v| v[0].pad(&pads, value), &[x]);
    }

    // ------------------------------------------------------------------ losses

    /// Logits `[C]`, `[N, C]` or `[N, C, d]` against class indices.
    #[test]
    fn cross_entropy_indices(seed in any::<u64>(), l in layout()) {
        let mut g = Gen::new(seed);
        let c = 1 + g.below(5);
        let shape = match g.below(3) {
            0 => vec![c],
            1 => vec![1 + g.below(4), c],
            _ => vec![1 + g.below(3), c, 1 + g.below(3)],
        };
        let mut tshape = shape.clone();
        tshape.remove(usize::from(shape.len() > 1));
        let targets = random_indices(&tshape, c, &mut g);
        let x = Input::build(&shape, l, &Domain::Range(-3.0, 3.0), g.next_u64());
        check("cross_entropy", |v| cross_entropy(&v[0], &targets), &[x]);
    }

    /// Gradients for both the logits and the target probabilities.
    #[test]
    fn cross_entropy_with_probabilities(
        s in shape_in(1..=3, 1..=4),
        seed in any::<u64>(),
        ll in layout(),
        lp in layout(),
    ) {
        let mut g = Gen::new(seed);
        let logits = Input::build(&s, ll, &Domain::Range(-3.0, 3.0), g.next_u64());
        // Any values would do (the loss is linear in them); these are distributions when
        // the class axis is the last one.
        let p = Input::build(&s, lp, &Domain::Any, g.next_u64());
        let probs = Input { leaf: p.leaf.softmax(-1).unwrap(), ..p };
        check("cross_entropy_probs", |v| cross_entropy_probs(&v[0], &v[1]), &[logits, probs]);
    }
}

/// Pool options (kernel 1-3, stride 1-3, padding up to half the kernel, dilation 1-2 for
/// max pooling) and an `[n, c, h, w]` shape at least one window large.
#[allow(clippy::needless_range_loop)]
fn pool_case(g: &mut Gen, dilate: bool) -> (Pool2dOptions, Vec<usize>) {
    let mut o = Pool2dOptions::new(1, 1, 0);
    let mut hw = [0; 2];
    for a in 0..2 {
        o.kernel[a] = 1 + g.below(3);
        o.stride[a] = 1 + g.below(3);
        o.padding[a] = g.below(o.kernel[a] / 2 + 1);
        o.dilation[a] = if dilate { 1 + g.below(2) } else { 1 };
        let reach = (o.kernel[a] - 1) * o.dilation[a] + 1;
        hw[a] = reach.saturating_sub(2 * o.padding[a]).max(1) + g.below(4);
    }
    (o, vec![1 + g.below(2), 1 + g.below(2), hw[0], hw[1]])
}
