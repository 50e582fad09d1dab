//! Every op honors views: for random shapes (rank 1-4, dims 1-5) and random views of them
//! (sliced with steps, narrowed and broadcast with stride 0, permuted), `op(view)` equals
//! `op(view.contiguous())`. Inputs are multiples of 1/16 in [-2, 2), so sums and products are
//! exact in f64 whatever the order and the comparisons can be bit-exact; the few ops whose
//! results go through transcendental functions in different association orders use a 1e-12
//! relative tolerance. Plus properties of layouts: reshape as a view vs a copy, symmetric
//! broadcasting, and `narrow`/`slice` offsets against a naive index computation.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tessera_tensor::shape::broadcast_shapes;
use tessera_tensor::{ConvOptions, Cpu, DType, Layout, Pool2dOptions, Tensor};

type T = Tensor<Cpu>;
type UnaryFn = fn(&T) -> tessera_tensor::Result<T>;
type BinaryFn = fn(&T, &T) -> tessera_tensor::Result<T>;

// ------------------------------------------------------------------------- inputs

/// SplitMix64: a tiny deterministic stream for test data (independent of `Rng`).
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A multiple of 1/16 in [-2, 2).
    fn value(&mut self) -> f64 {
        (self.next() % 64) as f64 / 16.0 - 2.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn contiguous(shape: &[usize], seed: u64) -> T {
    let mut m = Mix(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| m.value()).collect::<Vec<f64>>(), shape, &Cpu).unwrap()
}

/// A non-contiguous tensor of `shape`: a contiguous one of the reversed shape, transposed.
fn transposed_of(shape: &[usize], seed: u64) -> T {
    let rev: Vec<usize> = shape.iter().rev().copied().collect();
    let perm: Vec<usize> = (0..shape.len()).rev().collect();
    contiguous(&rev, seed).permute(&perm).unwrap()
}

/// A random view: slices with steps, narrowed-then-broadcast dims, then a permutation.
#[derive(Clone, Debug)]
struct Spec {
    base: Vec<usize>,
    slices: Vec<(usize, usize)>,
    expand: Vec<Option<usize>>,
    perm: Vec<usize>,
    seed: u64,
}

fn spec_of_rank(lo: usize, hi: usize) -> impl Strategy<Value = Spec> {
    (lo..=hi)
        .prop_flat_map(|r| {
            (
                prop::collection::vec(1usize..=5, r),
                prop::collection::vec((0usize..2, 1usize..=3), r),
                prop::collection::vec(prop::option::weighted(0.2, 1usize..=3), r),
                Just((0..r).collect::<Vec<usize>>()).prop_shuffle(),
                any::<u64>(),
            )
        })
        .prop_map(|(base, slices, expand, perm, seed)| Spec {
            base,
            slices,
            expand,
            perm,
            seed,
        })
}

fn spec() -> impl Strategy<Value = Spec> {
    spec_of_rank(1, 4)
}

impl Spec {
    fn build(&self) -> T {
        // Room around each dim so that the view starts at a non-zero offset, has gaps
        // (steps) and still has exactly the base's dims.
        let big: Vec<usize> = self
            .base
            .iter()
            .zip(&self.slices)
            .map(|(d, (_, st))| d * st + 3)
            .collect();
        let mut v = contiguous(&big, self.seed);
        for (i, (&d, &(s, st))) in self.base.iter().zip(&self.slices).enumerate() {
            let start = 1 + s % 2;
            v = v
                .slice(i as isize, start, start + d * st - (st - 1), st)
                .unwrap();
            assert_eq!(v.shape()[i], d);
        }
        let mut target = v.shape().to_vec();
        for (i, e) in self.expand.iter().enumerate() {
            if let Some(e) = *e {
                let d = v.shape()[i];
                v = v.narrow(i as isize, self.seed as usize % d, 1).unwrap();
                target[i] = e;
            }
        }
        v.broadcast_to(&target)
            .unwrap()
            .permute(&self.perm)
            .unwrap()
    }
}

// ------------------------------------------------------------------------- comparisons

fn bits(t: &T) -> Vec<u64> {
    t.to_f64_vec()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// Same shape, dtype and bit-identical elements.
fn same(what: &str, a: &T, b: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape(), "{}: shapes", what);
    prop_assert_eq!(a.dtype(), b.dtype(), "{}: dtypes", what);
    prop_assert!(
        bits(a) == bits(b),
        "{}: view gives {:?}, contiguous gives {:?}",
        what,
        a.to_f64_vec().unwrap(),
        b.to_f64_vec().unwrap()
    );
    Ok(())
}

/// Same shape and dtype, elements within 1e-12 relative.
fn near(what: &str, a: &T, b: &T) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape(), "{}: shapes", what);
    prop_assert_eq!(a.dtype(), b.dtype(), "{}: dtypes", what);
    let (x, y) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    for (p, q) in x.iter().zip(&y) {
        prop_assert!(
            (p - q).abs() <= 1e-12 * (1.0 + q.abs()) || (p.is_nan() && q.is_nan()),
            "{}: view gives {:?}, contiguous gives {:?}",
            what,
            x,
            y
        );
    }
    Ok(())
}

/// The contiguous copy of a view, checked to be one.
fn dense(v: &T) -> T {
    let c = v.contiguous().unwrap();
    assert!(c.is_contiguous());
    assert_eq!(c.to_f64_vec().unwrap(), v.to_f64_vec().unwrap());
    c
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

// ------------------------------------------------------------------------- op families

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unary_ops_honor_views(s in spec()) {
        let v = s.build();
        let c = dense(&v);
        let ops: [(&str, UnaryFn); 16] = [
            ("neg", |t| t.neg()),
            ("abs", |t| t.abs()),
            ("sign", |t| t.sign()),
            ("exp", |t| t.exp()),
            ("log", |t| t.abs()?.add_scalar(0.5)?.log()),
            ("sqrt", |t| t.abs()?.sqrt()),
            ("rsqrt", |t| t.abs()?.add_scalar(1.0)?.rsqrt()),
            ("square", |t| t.square()),
            ("tanh", |t| t.tanh()),
            ("erf", |t| t.erf()),
            ("sigmoid", |t| t.sigmoid()),
            ("relu", |t| t.relu()),
            ("powf", |t| t.abs()?.powf(1.7)),
            ("affine", |t| t.affine(-1.5, 0.25)),
            ("clamp", |t| t.clamp(-0.5, 0.75)),
            ("gelu", |t| t.gelu()),
        ];
        for (name, f) in ops {
            same(name, &f(&v).unwrap(), &f(&c).unwrap())?;
        }
        same("to f32", &v.to_dtype(DType::F32).unwrap(), &c.to_dtype(DType::F32).unwrap())?;
        same("copy", &v.copy().unwrap(), &c)?;
    }

    #[test]
    fn binary_ops_broadcast_over_views(
        s in spec(),
        keep in prop::collection::vec(any::<bool>(), 4),
        drop in 0usize..4,
        seed in any::<u64>(),
    ) {
        let v = s.build();
        let r = v.rank();
        let drop = drop.min(r);
        // Another operand that broadcasts against the view: some dims 1, leading dims dropped.
        let other_shape: Vec<usize> = (drop..r)
            .map(|i| if keep[i] { v.shape()[i] } else { 1 })
            .collect();
        let w = transposed_of(&other_shape, seed);
        let (vc, wc) = (dense(&v), dense(&w));
        for (name, f) in [
            ("add", T::add as BinaryFn),
            ("sub", T::sub),
            ("mul", T::mul),
            ("div", T::div),
            ("maximum", T::maximum),
            ("minimum", T::minimum),
        ] {
            same(name, &f(&v, &w).unwrap(), &f(&vc, &wc).unwrap())?;
            same(name, &f(&w, &v).unwrap(), &f(&wc, &vc).unwrap())?;
        }
        same("pow", &v.abs().unwrap().pow(&w).unwrap(), &vc.abs().unwrap().pow(&wc).unwrap())?;
        let (m, mc) = (v.lt(&w).unwrap(), vc.lt(&wc).unwrap());
        same("lt", &m, &mc)?;
        same("ge", &w.ge(&v).unwrap(), &wc.ge(&vc).unwrap())?;
        same("eq", &v.eq(&v).unwrap(), &vc.eq(&vc).unwrap())?;
        // where with a broadcast (and transposed) condition.
        let mt = transposed_of(m.shape(), seed)
            .compare_scalar(tessera_tensor::CmpOp::Gt, 0.0)
            .unwrap();
        same("where", &m.where_cond(&v, &w).unwrap(), &mc.where_cond(&vc, &wc).unwrap())?;
        same("where 2", &mt.where_cond(&w, &v).unwrap(),
            &dense(&mt).where_cond(&wc, &vc).unwrap())?;
    }

    #[test]
    fn reductions_honor_views(
        s in spec(),
        mask in prop::collection::vec(any::<bool>(), 4),
        keepdim in any::<bool>(),
        axis in 0usize..4,
    ) {
        let v = s.build();
        let c = dense(&v);
        let r = v.rank();
        let axes: Vec<isize> = (0..r).filter(|&i| mask[i]).map(|i| i as isize).collect();
        same("sum", &v.sum(&axes, keepdim).unwrap(), &c.sum(&axes, keepdim).unwrap())?;
        same("mean", &v.mean(&axes, keepdim).unwrap(), &c.mean(&axes, keepdim).unwrap())?;
        same("max", &v.max(&axes, keepdim).unwrap(), &c.max(&axes, keepdim).unwrap())?;
        same("min", &v.min(&axes, keepdim).unwrap(), &c.min(&axes, keepdim).unwrap())?;
        same("var", &v.var(&axes, 1, keepdim).unwrap(), &c.var(&axes, 1, keepdim).unwrap())?;
        same("var biased", &v.var(&axes, 0, keepdim).unwrap(), &c.var(&axes, 0, keepdim).unwrap())?;
        let a = (axis % r) as isize;
        same("argmax", &v.argmax(a, keepdim).unwrap(), &c.argmax(a, keepdim).unwrap())?;
        same("argmin", &v.argmin(a, keepdim).unwrap(), &c.argmin(a, keepdim).unwrap())?;
        let pos = v.gt(&v.mean(&[], true).unwrap()).unwrap();
        same("u8 count", &pos.sum(&axes, keepdim).unwrap(),
            &dense(&pos).sum(&axes, keepdim).unwrap())?;
    }

    #[test]
    fn matmul_on_transposed_operands(
        batch in prop::collection::vec(1usize..=3, 0..=2),
        (m, k, n) in (1usize..=5, 1usize..=5, 1usize..=5),
        bcast in any::<bool>(),
        s in spec(),
        seed in any::<u64>(),
    ) {
        // a: [batch.., m, k] stored as [batch.., k, m]; b: [k, n] or [1.., k, n] stored transposed.
        let mut ash = batch.clone();
        ash.extend([k, m]);
        let a = contiguous(&ash, seed).t().unwrap();
        let b = if bcast {
            let mut bsh = vec![1; batch.len()];
            bsh.extend([n, k]);
            contiguous(&bsh, seed ^ 1).t().unwrap()
        } else {
            transposed_of(&[k, n], seed ^ 1)
        };
        same("matmul", &a.matmul(&b).unwrap(), &dense(&a).matmul(&dense(&b)).unwrap())?;
        same("matmul^T", &b.t().unwrap().matmul(&a.t().unwrap()).unwrap(),
            &dense(&b.t().unwrap()).matmul(&dense(&a.t().unwrap())).unwrap())?;
        // A random view on the left, a transposed matrix on the right.
        let v = s.build();
        let last = v.shape()[v.rank() - 1];
        let w = transposed_of(&[last, n], seed ^ 2);
        same("view @ w", &v.matmul(&w).unwrap(), &dense(&v).matmul(&dense(&w)).unwrap())?;
        let u = transposed_of(&[n, v.shape()[0]], seed ^ 3);
        if v.rank() <= 2 {
            same("u @ view", &u.matmul(&v).unwrap(), &dense(&u).matmul(&dense(&v)).unwrap())?;
        }
    }

    #[test]
    fn softmax_and_layer_norm_honor_views(
        s in spec(),
        axis in 0usize..4,
        k in 1usize..=4,
        seed in any::<u64>(),
    ) {
        let v = s.build();
        let c = dense(&v);
        let r = v.rank();
        let a = (axis % r) as isize;
        near("softmax", &v.softmax(a).unwrap(), &c.softmax(a).unwrap())?;
        near("log_softmax", &v.log_softmax(a).unwrap(), &c.log_softmax(a).unwrap())?;
        let k = 1 + (k - 1) % r;
        let ns = v.shape()[r - k..].to_vec();
        let (w, b) = (transposed_of(&ns, seed), transposed_of(&ns, seed ^ 7));
        near("layer_norm", &v.layer_norm(&ns, Some(&w), Some(&b), 1e-5).unwrap(),
            &c.layer_norm(&ns, Some(&dense(&w)), Some(&dense(&b)), 1e-5).unwrap())?;
        near("layer_norm plain", &v.layer_norm(&ns, None, None, 1e-6).unwrap(),
            &c.layer_norm(&ns, None, None, 1e-6).unwrap())?;
        if r >= 2 && v.numel() / v.shape()[1] >= 2 {
            near("batch_norm", &v.batch_norm_train(None, None, 1e-5).unwrap().output,
                &c.batch_norm_train(None, None, 1e-5).unwrap().output)?;
        }
    }

    #[test]
    fn conv2d_on_permuted_inputs(
        (n, cg, g, h, wd) in (1usize..=2, 1usize..=2, 1usize..=2, 3usize..=6, 3usize..=6),
        (ocg, kh, kw) in (1usize..=2, 1usize..=3, 1usize..=3),
        (stride, pad, dil) in (1usize..=2, 0usize..=1, 1usize..=2),
        seed in any::<u64>(),
    ) {
        let (c, oc) = (cg * g, ocg * g);
        let o = ConvOptions {
            stride: [stride, 1],
            padding: [pad, pad],
            dilation: [dil, 1],
            groups: g,
        };
        // Channels-last storage, permuted to NCHW and back (a common view in practice).
        let x = contiguous(&[n, h, wd, c], seed).permute(&[0, 3, 1, 2]).unwrap();
        let w = contiguous(&[kh, kw, cg, oc], seed ^ 1).permute(&[3, 2, 0, 1]).unwrap();
        let (xc, wc) = (dense(&x), dense(&w));
        let Ok(p) = xc.conv2d_params(wc.shape(), &o) else {
            return Ok(()); // kernel span larger than the padded input
        };
        let y = x.conv2d(&w, None, &o).unwrap();
        same("conv2d", &y, &xc.conv2d(&wc, None, &o).unwrap())?;
        let nhwc = y.permute(&[0, 2, 3, 1]).unwrap().contiguous().unwrap();
        let back = nhwc.permute(&[0, 3, 1, 2]).unwrap();
        same("permuted back", &back, &y)?;
        let gshape = y.shape().to_vec();
        let g_view = transposed_of(&gshape, seed ^ 2);
        let gc = dense(&g_view);
        same("grad input", &g_view.conv2d_backward_input(&w, &p).unwrap(),
            &gc.conv2d_backward_input(&wc, &p).unwrap())?;
        same("grad weight", &g_view.conv2d_backward_weight(&x, &p).unwrap(),
            &gc.conv2d_backward_weight(&xc, &p).unwrap())?;
    }

    #[test]
    fn pooling_honors_views(
        (n, c, h, w) in (1usize..=2, 1usize..=3, 2usize..=6, 2usize..=6),
        (k, stride, pad) in (1usize..=3, 1usize..=2, 0usize..=1),
        (oh, ow) in (1usize..=4, 1usize..=4),
        include in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let x = contiguous(&[w, c, n, h], seed).permute(&[2, 1, 3, 0]).unwrap(); // [n, c, h, w]
        let xc = dense(&x);
        let mut o = Pool2dOptions::new(k.min(h).min(w), stride, pad);
        o.count_include_pad = include;
        if let Ok(p) = xc.pool2d_params(&o) {
            let (v, i) = x.max_pool2d(&o).unwrap();
            let (vc, ic) = xc.max_pool2d(&o).unwrap();
            same("max values", &v, &vc)?;
            same("max indices", &i, &ic)?;
            let gv = transposed_of(v.shape(), seed ^ 1);
            same("max backward", &gv.max_pool2d_backward(&i, [h, w]).unwrap(),
                &dense(&gv).max_pool2d_backward(&ic, [h, w]).unwrap())?;
            same("avg", &x.avg_pool2d(&o).unwrap(), &xc.avg_pool2d(&o).unwrap())?;
            same("avg backward", &gv.avg_pool2d_backward(&p).unwrap(),
                &dense(&gv).avg_pool2d_backward(&p).unwrap())?;
        }
        same("adaptive", &x.adaptive_avg_pool2d([oh, ow]).unwrap(),
            &xc.adaptive_avg_pool2d([oh, ow]).unwrap())?;
        let ga = transposed_of(&[n, c, oh, ow], seed ^ 2);
        same("adaptive backward", &ga.adaptive_avg_pool2d_backward([h, w]).unwrap(),
            &dense(&ga).adaptive_avg_pool2d_backward([h, w]).unwrap())?;
    }

    #[test]
    fn bicubic_honors_views(
        (n, c, h, w) in (1usize..=2, 1usize..=2, 1usize..=5, 1usize..=5),
        (oh, ow) in (1usize..=7, 1usize..=7),
        align in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let x = contiguous(&[h, n, w, c], seed).permute(&[1, 3, 0, 2]).unwrap();
        let xc = dense(&x);
        same("bicubic", &x.interpolate_bicubic(Some([oh, ow]), None, align).unwrap(),
            &xc.interpolate_bicubic(Some([oh, ow]), None, align).unwrap())?;
        let p = xc.resize_params(Some([oh, ow]), None, align).unwrap();
        let g = transposed_of(&[n, c, oh, ow], seed ^ 1);
        same("bicubic backward", &g.interpolate_bicubic_backward(&p).unwrap(),
            &dense(&g).interpolate_bicubic_backward(&p).unwrap())?;
    }

    #[test]
    fn index_ops_honor_views(
        s in spec(),
        axis in 0usize..4,
        len in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let v = s.build();
        let c = dense(&v);
        let r = v.rank();
        let a = axis % r;
        let d = v.shape()[a];
        let mut m = Mix(seed);
        // index_select with a 1-D index that is itself a strided view.
        let raw: Vec<i64> = (0..2 * len).map(|_| m.below(d) as i64).collect();
        let idx = Tensor::from_vec(raw, &[2 * len], &Cpu).unwrap().slice(0, 1, 2 * len, 2).unwrap();
        same("index_select", &v.index_select(a as isize, &idx).unwrap(),
            &c.index_select(a as isize, &dense(&idx)).unwrap())?;
        // gather / scatter_add with a transposed index of the same rank.
        let mut ishape = v.shape().to_vec();
        ishape[a] = len;
        let rev: Vec<usize> = ishape.iter().rev().copied().collect();
        let count: usize = ishape.iter().product();
        let vals: Vec<i64> = (0..count).map(|_| m.below(d) as i64).collect();
        let perm: Vec<usize> = (0..r).rev().collect();
        let gi = Tensor::from_vec(vals, &rev, &Cpu).unwrap().permute(&perm).unwrap();
        let gic = dense(&gi);
        same("gather", &v.gather(a as isize, &gi).unwrap(), &c.gather(a as isize, &gic).unwrap())?;
        let src = transposed_of(&ishape, seed ^ 5);
        same("scatter_add", &v.scatter_add(a as isize, &gi, &src).unwrap(),
            &c.scatter_add(a as isize, &gic, &dense(&src)).unwrap())?;
    }

    #[test]
    fn cat_and_pad_honor_views(s in spec(), axis in 0usize..4, extra in 1usize..=3,
        pads in prop::collection::vec(0usize..=2, 0..=8), seed in any::<u64>()) {
        let v = s.build();
        let c = dense(&v);
        let r = v.rank();
        let a = axis % r;
        let mut oshape = v.shape().to_vec();
        oshape[a] = extra;
        let o = transposed_of(&oshape, seed);
        let cat = T::cat(&[v.clone(), o.clone(), v.clone()], a as isize).unwrap();
        same("cat", &cat, &T::cat(&[c.clone(), dense(&o), c.clone()], a as isize).unwrap())?;
        same("stack", &T::stack(&[v.clone(), c.clone()], a as isize).unwrap(),
            &T::stack(&[c.clone(), c.clone()], a as isize).unwrap())?;
        // The pieces of a split are views; concatenating them back is the identity.
        let parts = cat.split(2, a as isize).unwrap();
        same("split+cat", &T::cat(&parts, a as isize).unwrap(), &cat)?;
        let pads: Vec<usize> = pads.into_iter().take(2 * r).collect();
        let pads = &pads[..pads.len() / 2 * 2];
        same("pad", &v.pad(pads, -3.0).unwrap(), &c.pad(pads, -3.0).unwrap())?;
    }

    // --------------------------------------------------------------------- layouts

    #[test]
    fn reshape_view_equals_reshape_copy(s in spec(), split in any::<u64>()) {
        let v = s.build();
        let elems = v.to_f64_vec().unwrap();
        // A random target shape: factor numel into up to four dims, with some 1s.
        let mut m = Mix(split);
        let mut rest = v.numel();
        let mut target = Vec::new();
        while rest > 1 && target.len() < 3 {
            let divisors: Vec<usize> = (1..=rest).filter(|d| rest % d == 0).collect();
            let d = divisors[m.below(divisors.len())];
            target.push(d);
            rest /= d;
        }
        target.push(rest);
        if m.below(2) == 0 {
            target.insert(m.below(target.len() + 1), 1);
        }
        let r = v.reshape(&target).unwrap();
        prop_assert_eq!(r.shape(), &target[..]);
        prop_assert_eq!(r.to_f64_vec().unwrap(), elems.clone());
        match v.layout().reshape(&target) {
            Some(l) => {
                // The view path: the same storage read through the new layout.
                let viewed = v.as_strided(l.shape(), l.strides(), l.offset()).unwrap();
                prop_assert_eq!(viewed.to_f64_vec().unwrap(), elems.clone());
                prop_assert!(r.shares_storage_with(&v));
            }
            None => {
                prop_assert!(!v.is_contiguous(), "a contiguous layout always reshapes");
                prop_assert!(!r.shares_storage_with(&v));
            }
        }
        // Inserting or removing size-1 dims never needs a copy.
        let mut ones = v.shape().to_vec();
        ones.insert(m.below(ones.len() + 1), 1);
        prop_assert!(v.layout().reshape(&ones).is_some());
        prop_assert_eq!(v.reshape(&ones).unwrap().to_f64_vec().unwrap(), elems);
    }

    #[test]
    fn broadcast_shapes_is_symmetric(
        a in prop::collection::vec(prop::sample::select(vec![1usize, 2, 3]), 0..=4),
        b in prop::collection::vec(prop::sample::select(vec![1usize, 2, 3]), 0..=4),
    ) {
        let ab = broadcast_shapes("t", &a, &b);
        let ba = broadcast_shapes("t", &b, &a);
        prop_assert_eq!(ab.is_ok(), ba.is_ok());
        // Naive NumPy rule.
        let r = a.len().max(b.len());
        let pad = |s: &[usize]| {
            let mut p = vec![1; r - s.len()];
            p.extend_from_slice(s);
            p
        };
        let (pa, pb) = (pad(&a), pad(&b));
        let naive: Option<Vec<usize>> = pa.iter().zip(&pb).map(|(&x, &y)| {
            if x == y || y == 1 { Some(x) } else if x == 1 { Some(y) } else { None }
        }).collect();
        match (ab, ba) {
            (Ok(x), Ok(y)) => {
                prop_assert_eq!(x.as_slice(), y.as_slice());
                prop_assert_eq!(Some(x.to_vec()), naive);
                // Both sides broadcast to the result.
                let la = Layout::contiguous(&a).broadcast_to(&x).unwrap();
                let lb = Layout::contiguous(&b).broadcast_to(&x).unwrap();
                prop_assert_eq!(la.shape(), lb.shape());
            }
            _ => prop_assert_eq!(naive, None),
        }
    }

    #[test]
    fn narrow_and_slice_offsets_match_naive(
        shape in prop::collection::vec(1usize..=5, 1..=4),
        cuts in prop::collection::vec((0usize..5, 0usize..6, 1usize..=3), 4),
        perm_seed in any::<u64>(),
    ) {
        let r = shape.len();
        let base = Layout::contiguous(&shape);
        // Per axis: start, length and step into the base.
        let mut l = base.clone();
        let mut start = vec![0; r];
        let mut step = vec![1; r];
        for i in 0..r {
            let (s, e, st) = cuts[i];
            let d = shape[i];
            let s = s % d;
            let len = (e % (d - s + 1)).max(1).min(d - s);
            if st == 1 {
                l = l.narrow(i, s, len).unwrap();
            } else {
                l = l.slice(i, s, s + len, st).unwrap();
            }
            start[i] = s;
            step[i] = st;
            prop_assert_eq!(l.shape()[i], len.div_ceil(st));
        }
        // Optionally permute, tracking where each base axis went.
        let mut perm: Vec<usize> = (0..r).collect();
        let mut m = Mix(perm_seed);
        for i in (1..r).rev() {
            perm.swap(i, m.below(i + 1));
        }
        let lp = l.permute(&perm).unwrap();
        // Naive: every multi-index of the view, mapped to base coordinates, row-major base offset.
        let vshape = lp.shape().to_vec();
        let total: usize = vshape.iter().product();
        let base_strides = base.strides().to_vec();
        let mut naive = Vec::with_capacity(total);
        for flat in 0..total {
            let mut rem = flat;
            let mut idx = vec![0; r];
            for j in (0..r).rev() {
                idx[j] = rem % vshape[j];
                rem /= vshape[j];
            }
            let mut off = 0;
            for j in 0..r {
                let bj = perm[j];
                off += (start[bj] + idx[j] * step[bj]) * base_strides[bj];
            }
            naive.push(off);
        }
        prop_assert_eq!(lp.offsets().collect::<Vec<_>>(), naive.clone());
        prop_assert_eq!(lp.numel(), total);
        if total > 0 {
            prop_assert_eq!(lp.required_len(), naive.iter().max().unwrap() + 1);
        }
        // And a tensor read through the view agrees.
        let data: Vec<f64> = (0..base.numel()).map(|i| i as f64).collect();
        let t = Tensor::from_vec(data, &shape, &Cpu).unwrap();
        let tv = t.as_strided(lp.shape(), lp.strides(), lp.offset()).unwrap();
        prop_assert_eq!(
            tv.to_f64_vec().unwrap(),
            naive.iter().map(|&o| o as f64).collect::<Vec<_>>()
        );
    }
}

// ------------------------------------------------------------------------- edge cases

#[test]
fn empty_and_scalar_views() {
    let t = contiguous(&[2, 3, 4], 1);
    // Empty views anywhere in the storage read as empty.
    let e = t.narrow(1, 3, 0).unwrap();
    assert_eq!(e.shape(), &[2, 0, 4]);
    assert!(e.to_f64_vec().unwrap().is_empty());
    assert_eq!(
        e.sum(&[1], false).unwrap().to_f64_vec().unwrap(),
        vec![0.0; 8]
    );
    let far = t.as_strided(&[0, 3], &[3, 1], 40).unwrap();
    assert!(far.to_f64_vec().unwrap().is_empty());
    assert!(far.contiguous().unwrap().to_f64_vec().unwrap().is_empty());
    assert!(t
        .slice(2, 4, 9, 2)
        .unwrap()
        .to_f64_vec()
        .unwrap()
        .is_empty());
    // Zero inner dim: a matrix of zeros.
    let a = Tensor::<Cpu>::zeros(&[2, 0], DType::F64, &Cpu).unwrap();
    let b = Tensor::<Cpu>::zeros(&[0, 3], DType::F64, &Cpu).unwrap();
    assert_eq!(a.matmul(&b).unwrap().to_f64_vec().unwrap(), vec![0.0; 6]);
    // Scalars: reducing "axis 0" of a rank-0 tensor is the tensor itself (PyTorch allows
    // dim 0 and -1 there), and argmax of a scalar is 0.
    let s = Tensor::<Cpu>::scalar(2.5, DType::F64, &Cpu).unwrap();
    assert_eq!(s.sum(&[], false).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.sum(&[0], false).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.max(&[-1], true).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.argmax(0, false).unwrap().item().unwrap(), 0.0);
    assert!(s.sum(&[1], false).is_err());
    // A broadcast scalar view.
    let bs = s.broadcast_to(&[2, 2]).unwrap();
    assert_eq!(bs.layout().strides(), &[0, 0]);
    assert_eq!(
        bs.sum(&[0], false).unwrap().to_f64_vec().unwrap(),
        vec![5.0, 5.0]
    );
}

/// The view generator is not vacuous: most views are strided, many broadcast.
#[test]
fn generated_views_are_mostly_strided() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut strided, mut zero, mut offset) = (0, 0, 0);
    for _ in 0..200 {
        let v = spec().new_tree(&mut runner).unwrap().current().build();
        strided += !v.is_contiguous() as usize;
        zero += v.layout().has_zero_stride() as usize;
        offset += (v.layout().offset() > 0) as usize;
    }
    assert!(strided > 150, "{strided}");
    assert!(zero > 40, "{zero}");
    assert_eq!(offset, 200);
}
