//! Helpers the op families share: recording outputs, building inputs, checking values.

use tessera_tensor::{Backend, DType, HostBuffer, Result, Tensor};

/// Named results of one family, in order: shape and the host copy.
pub type Outputs = Vec<(String, Vec<usize>, HostBuffer)>;

/// Records `t` as output `name`: its shape and a host copy.
pub fn rec<B: Backend>(out: &mut Outputs, name: &str, t: &Tensor<B>) -> Result<()> {
    out.push((name.to_string(), t.shape().to_vec(), t.to_host()?));
    Ok(())
}

/// An F32 tensor of `shape` from f64 values.
pub fn f32t<B: Backend>(b: &B, v: &[f64], shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::from_vec(v.iter().map(|&x| x as f32).collect(), shape, b)
}

/// An F64 tensor of `shape`.
pub fn f64t<B: Backend>(b: &B, v: &[f64], shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::from_vec(v.to_vec(), shape, b)
}

/// An I64 tensor of `shape`.
pub fn i64t<B: Backend>(b: &B, v: &[i64], shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::from_vec(v.to_vec(), shape, b)
}

/// `0, 1, .., n-1` as f32 in `shape`.
pub fn iota<B: Backend>(b: &B, shape: &[usize]) -> Result<Tensor<B>> {
    Tensor::arange(shape.iter().product(), DType::F32, b)?.reshape(shape)
}

/// Asserts that `t` is within `tol · (1 + |expected|)` of `expected`, elementwise.
#[track_caller]
pub fn close<B: Backend>(t: &Tensor<B>, expected: &[f64], tol: f64) {
    let got = t.to_f64_vec().unwrap();
    assert_eq!(got.len(), expected.len(), "{t:?}: {got:?} vs {expected:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (g - e).abs() <= tol * (1.0 + e.abs()),
            "{t:?}: got {got:?}, expected {expected:?}"
        );
    }
}

/// Asserts that `t` equals `expected` exactly.
#[track_caller]
pub fn exact<B: Backend>(t: &Tensor<B>, expected: &[f64]) {
    assert_eq!(t.to_f64_vec().unwrap(), expected, "{t:?}");
}

/// `sin`-like deterministic weights without a sin op: `tanh(x) - x/3`.
pub trait SinLike: Sized {
    /// `tanh(self) - self/3`.
    fn sin_like(&self) -> Result<Self>;
}
impl<B: Backend> SinLike for Tensor<B> {
    fn sin_like(&self) -> Result<Self> {
        self.tanh()?.sub(&self.mul_scalar(1.0 / 3.0)?)
    }
}
