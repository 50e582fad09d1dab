//! The kinds of the elementwise, comparison and reduction primitives: one enum each, so a
//! backend implements one kernel per family and matches the kind inside it.

/// Elementwise functions of one input. The parameterized variants carry their scalars so that
/// `x * 2 + 1` is one pass, not three tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Abs,
    /// -1, 0 or 1 (0 for ±0 and NaN passes through).
    Sign,
    Exp,
    Log,
    Sqrt,
    /// 1/sqrt(x)
    Rsqrt,
    /// 1/x
    Recip,
    /// x*x
    Square,
    Tanh,
    Erf,
    /// 1/(1+exp(-x)), evaluated without overflow for large |x|.
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// x^p for a scalar exponent.
    Powf(f64),
    /// x / d for a scalar divisor (not `x * (1/d)`, which rounds differently).
    DivScalar(f64),
    /// c / x for a scalar numerator.
    ScalarDiv(f64),
    /// mul*x + add.
    Affine {
        mul: f64,
        add: f64,
    },
    /// min(max(x, lo), hi).
    Clamp {
        min: f64,
        max: f64,
    },
}

/// Elementwise functions of two inputs of the same shape and dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// max(a, b) (NaN if either is NaN, like `torch.maximum`).
    Maximum,
    /// min(a, b) (NaN if either is NaN, like `torch.minimum`).
    Minimum,
    /// a^b
    Pow,
}

/// Elementwise comparisons; the result has dtype [`DType::U8`](crate::DType::U8) holding 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    /// Index (I64, row-major over the reduced axes) of the first maximum.
    ArgMax,
    /// Index (I64, row-major over the reduced axes) of the first minimum.
    ArgMin,
}
