//! [`DinoLoss`]: DINO's cross-entropy between a sharpened, centered teacher and the student
//! over every pair of different views (`DINOLoss` in `main_dino.py`).

use alloc::vec::Vec;
use tessera_autograd::Var;
use tessera_nn::module::{join, Entry, EntryMut, Module};
use tessera_nn::schedule::warmup_then_constant;
use tessera_tensor::{arg_err, shape_err, Backend, DType, Result, Tensor};

/// Hyper-parameters of [`DinoLoss`] (the arguments of DINO's `DINOLoss.__init__`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DinoLossConfig {
    /// `K`, the head's output dimension (65536 in DINO).
    pub out_dim: usize,
    /// Views per image given to the student: 2 global + the local crops (DINO: 2 + 8 = 10).
    pub ncrops: usize,
    /// Teacher temperature at epoch 0 (DINO: 0.04).
    pub warmup_teacher_temp: f64,
    /// Teacher temperature after the warm-up (DINO: 0.04 by default, 0.07 in the ViT-S/16
    /// recipe).
    pub teacher_temp: f64,
    /// Epochs of the linear warm-up of the teacher temperature (DINO recipe: 30).
    pub warmup_teacher_temp_epochs: usize,
    /// Total training epochs: the temperature schedule has one value per epoch.
    pub nepochs: usize,
    /// Student temperature `τ_s` (DINO: 0.1).
    pub student_temp: f64,
    /// Momentum `m` of the center's moving average (DINO: 0.9).
    pub center_momentum: f64,
}

impl DinoLossConfig {
    /// DINO's ViT-S/16 recipe: teacher temperature 0.04 → 0.07 over 30 epochs, student
    /// temperature 0.1, center momentum 0.9. A run shorter than the 30-epoch warm-up gets a
    /// warm-up as long as the run (see [`DinoLoss::new`]).
    pub fn new(out_dim: usize, ncrops: usize, nepochs: usize) -> Self {
        DinoLossConfig {
            out_dim,
            ncrops,
            warmup_teacher_temp: 0.04,
            teacher_temp: 0.07,
            warmup_teacher_temp_epochs: 30,
            nepochs,
            student_temp: 0.1,
            center_momentum: 0.9,
        }
    }
}

/// DINO's loss (`DINOLoss` in `main_dino.py`), with its center buffer.
///
/// Given the student's outputs for all `ncrops` views of a batch of `B` images and the
/// teacher's outputs for the 2 global views (rows grouped by view: `[view 0 of every image,
/// view 1 of every image, ...]`, as DINO concatenates its crops):
///
/// 1. `s_v = log_softmax(student_v / τ_s)` for each student view `v`;
/// 2. `q_i = softmax((teacher_i − center) / τ_t(epoch))` for the two teacher views, a constant
///    (no gradient flows into the teacher);
/// 3. `loss = mean over pairs (i, v), v ≠ i, of mean over the batch of −Σ_k q_i[k]·s_v[k]`,
///    i.e. `2·(ncrops − 1)` cross-entropy terms;
/// 4. after the loss, `center ← m·center + (1 − m)·mean(teacher_output, dim 0)` (the raw
///    teacher outputs, before centering).
///
/// DINO all-reduces the batch sum of the teacher outputs across GPUs before dividing by the
/// global batch size. Tessera trains in one process, so the batch mean is the local one;
/// a multi-process trainer would have to sum `teacher_output` over its workers first.
///
/// The center is a buffer saved in checkpoints: [`Module`] exposes it under the name
/// `center` (with a prefix, e.g. `dino_loss.center`), so `state_dict()` /
/// `load_state_dict()` save and restore it as DINO's `dino_loss.state_dict()` does.
#[derive(Clone, Debug)]
pub struct DinoLoss<B: Backend> {
    config: DinoLossConfig,
    teacher_temp_schedule: Vec<f64>,
    center: Tensor<B>,
}

impl<B: Backend> DinoLoss<B> {
    /// A loss with a zero center `[1, out_dim]` of `dtype`. Errors on a temperature or
    /// momentum that is not a positive finite number (momentum in `[0, 1]`) or fewer than 2
    /// crops. A teacher-temperature warm-up longer than `nepochs` is clamped to `nepochs`.
    pub fn new(config: DinoLossConfig, dtype: DType, backend: &B) -> tessera_nn::Result<Self> {
        let op = "DinoLoss::new";
        let c = &config;
        for (what, t) in [
            ("warmup_teacher_temp", c.warmup_teacher_temp),
            ("teacher_temp", c.teacher_temp),
            ("student_temp", c.student_temp),
        ] {
            if !(t > 0.0 && t.is_finite()) {
                return Err(arg_err!(op, "{what} must be positive and finite, got {t}").into());
            }
        }
        if !(0.0..=1.0).contains(&c.center_momentum) {
            return Err(arg_err!(
                op,
                "center_momentum must be in [0, 1], got {}",
                c.center_momentum
            )
            .into());
        }
        if c.ncrops < 2 {
            return Err(arg_err!(
                op,
                "ncrops must be at least 2 (the two global views), got {}",
                c.ncrops
            )
            .into());
        }
        if c.out_dim == 0 {
            return Err(arg_err!(op, "out_dim must be positive").into());
        }
        // DINO's `DINOLoss.__init__` fails on a run shorter than the warm-up (`np.ones` of a
        // negative length); a short run is a normal use here, so the warm-up is clamped to the
        // run: it then spans the whole run and still ends at `teacher_temp`.
        let teacher_temp_schedule = warmup_then_constant(
            c.warmup_teacher_temp,
            c.teacher_temp,
            c.warmup_teacher_temp_epochs.min(c.nepochs),
            c.nepochs,
        )?;
        let center = Tensor::zeros(&[1, c.out_dim], dtype, backend)?;
        Ok(DinoLoss {
            config,
            teacher_temp_schedule,
            center,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DinoLossConfig {
        &self.config
    }

    /// The center `[1, out_dim]`.
    pub fn center(&self) -> &Tensor<B> {
        &self.center
    }

    /// Replaces the center (when resuming); shape and dtype must match.
    pub fn set_center(&mut self, center: Tensor<B>) -> Result<()> {
        let old = &self.center;
        if center.shape() != old.shape() || center.dtype() != old.dtype() {
            return Err(shape_err!(
                "DinoLoss::set_center",
                "new center {:?} {} does not match {:?} {}",
                center.shape(),
                center.dtype(),
                old.shape(),
                old.dtype()
            ));
        }
        self.center = center.contiguous()?;
        Ok(())
    }

    /// The teacher temperature of every epoch (DINO's `teacher_temp_schedule`).
    pub fn teacher_temp_schedule(&self) -> &[f64] {
        &self.teacher_temp_schedule
    }

    /// The teacher temperature at `epoch`; errors past the end of the schedule.
    pub fn teacher_temp(&self, epoch: usize) -> Result<f64> {
        self.teacher_temp_schedule
            .get(epoch)
            .copied()
            .ok_or_else(|| {
                arg_err!(
                    "DinoLoss",
                    "epoch {epoch} is past the teacher temperature schedule of {} epochs",
                    self.teacher_temp_schedule.len()
                )
            })
    }

    /// The number of images `B` in a batch: checks `student [ncrops·B, K]` and
    /// `teacher [2·B, K]`.
    fn batch_size(&self, student: &[usize], teacher: &[usize]) -> Result<usize> {
        let (nc, k) = (self.config.ncrops, self.config.out_dim);
        let ok = student.len() == 2
            && teacher.len() == 2
            && student[1] == k
            && teacher[1] == k
            && student[0] % nc == 0
            && teacher[0] == 2 * (student[0] / nc)
            && student[0] > 0;
        if !ok {
            return Err(shape_err!(
                "DinoLoss",
                "expected student output [ncrops*B, K] = [{nc}*B, {k}] and teacher output \
                 [2*B, {k}] with the same B > 0, got {student:?} and {teacher:?}"
            ));
        }
        Ok(student[0] / nc)
    }

    /// The teacher's targets `softmax((teacher − center) / τ_t)`, chunked into the two global
    /// views (constants).
    pub fn teacher_targets(&self, teacher_output: &Tensor<B>, epoch: usize) -> Result<Vec<Var<B>>> {
        let temp = self.teacher_temp(epoch)?;
        let t = teacher_output.sub(&self.center)?;
        let q = t.div(&Tensor::scalar(temp, t.dtype(), t.backend())?)?;
        let q = q.softmax(-1)?;
        Ok(q.chunk(2, 0)?.into_iter().map(Var::constant).collect())
    }

    /// The loss without updating the center (for evaluation and gradient checks); see the
    /// [type docs](DinoLoss).
    pub fn loss(
        &self,
        student_output: &Var<B>,
        teacher_output: &Tensor<B>,
        epoch: usize,
    ) -> Result<Var<B>> {
        self.batch_size(student_output.shape(), teacher_output.shape())?;
        let dtype = student_output.dtype();
        let backend = student_output.value().backend().clone();
        let tau_s = Var::constant(Tensor::scalar(self.config.student_temp, dtype, &backend)?);
        // log_softmax is row-wise, so one call over all views equals one per chunk.
        let student_logp = student_output.div(&tau_s)?.log_softmax(-1)?;
        let student_views = student_logp.chunk(self.config.ncrops, 0)?;
        let teacher_views = self.teacher_targets(teacher_output, epoch)?;
        let mut total: Option<Var<B>> = None;
        let mut n_terms = 0usize;
        for (iq, q) in teacher_views.iter().enumerate() {
            for (v, s) in student_views.iter().enumerate() {
                if v == iq {
                    continue; // the student and the teacher saw the same view
                }
                // mean over the batch of sum_k(−q·s) = −mean(sum_k(q·s)) exactly.
                let term = q.mul(s)?.sum(&[-1], false)?.mean(&[], false)?.neg()?;
                total = Some(match total {
                    Some(acc) => acc.add(&term)?,
                    None => term,
                });
                n_terms += 1;
            }
        }
        let total = total.ok_or_else(|| arg_err!("DinoLoss", "no pair of different views"))?;
        let n = Var::constant(Tensor::scalar(n_terms as f64, dtype, &backend)?);
        total.div(&n)
    }

    /// DINO's `forward`: the loss, then the center update from this batch's raw teacher
    /// outputs (see the [type docs](DinoLoss)).
    pub fn forward(
        &mut self,
        student_output: &Var<B>,
        teacher_output: &Tensor<B>,
        epoch: usize,
    ) -> Result<Var<B>> {
        let loss = self.loss(student_output, teacher_output, epoch)?;
        self.update_center(teacher_output)?;
        Ok(loss)
    }

    /// `center ← m·center + (1 − m)·batch_center` with `batch_center = Σ_rows teacher /
    /// rows` (DINO's `update_center`, single process).
    pub fn update_center(&mut self, teacher_output: &Tensor<B>) -> Result<()> {
        let shape = teacher_output.shape();
        if shape.len() != 2 || shape[1] != self.config.out_dim || shape[0] == 0 {
            return Err(shape_err!(
                "DinoLoss::update_center",
                "expected teacher output [N > 0, {}], got {shape:?}",
                self.config.out_dim
            ));
        }
        let sum = teacher_output.sum(&[0], true)?;
        let rows = Tensor::scalar(shape[0] as f64, sum.dtype(), sum.backend())?;
        let batch_center = sum.div(&rows)?;
        let m = self.config.center_momentum;
        let center = self
            .center
            .mul_scalar(m)?
            .add(&batch_center.mul_scalar(1.0 - m)?)?;
        self.set_center(center)
    }
}

/// The center is the loss's only state: a buffer named `center`.
impl<B: Backend> Module<B> for DinoLoss<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        f(&join(prefix, "center"), Entry::Buffer(&self.center));
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        f(&join(prefix, "center"), EntryMut::Buffer(&mut self.center));
    }

    fn set_training(&mut self, _training: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use tessera_nn::ModuleExt;
    use tessera_tensor::Cpu;

    fn loss(out_dim: usize, ncrops: usize) -> DinoLoss<Cpu> {
        let mut c = DinoLossConfig::new(out_dim, ncrops, 4);
        c.warmup_teacher_temp_epochs = 2;
        DinoLoss::new(c, DType::F64, &Cpu).unwrap()
    }

    #[test]
    fn uniform_outputs_give_log_k() {
        // Equal logits: every cross-entropy term is log K.
        let mut l = loss(5, 3);
        let s = Var::leaf(Tensor::zeros(&[6, 5], DType::F64, &Cpu).unwrap());
        let t = Tensor::full(&[4, 5], 2.0, DType::F64, &Cpu).unwrap();
        let v = l.forward(&s, &t, 0).unwrap().value().item().unwrap();
        assert!((v - libm::log(5.0)).abs() < 1e-12, "{v}");
        // center = 0.9·0 + 0.1·2
        for c in l.center().to_vec::<f64>().unwrap() {
            assert!((c - 0.2).abs() < 1e-15);
        }
        assert_eq!(l.state_dict().keys().collect::<Vec<_>>(), ["center"]);
        assert_eq!(l.teacher_temp_schedule(), [0.04, 0.07, 0.07, 0.07]);
    }

    #[test]
    fn bad_shapes_and_configs_are_errors() {
        let l = loss(5, 3);
        let s = Var::leaf(Tensor::zeros(&[6, 5], DType::F64, &Cpu).unwrap());
        let t = Tensor::zeros(&[6, 5], DType::F64, &Cpu).unwrap();
        let e = l.loss(&s, &t, 0).unwrap_err();
        assert!(format!("{e}").contains("[6, 5]"), "{e}");
        let t = Tensor::zeros(&[4, 5], DType::F64, &Cpu).unwrap();
        assert!(l.loss(&s, &t, 4).is_err()); // past the schedule
        let mut c = DinoLossConfig::new(5, 1, 40);
        assert!(DinoLoss::<Cpu>::new(c, DType::F64, &Cpu).is_err());
        c.ncrops = 2;
        c.nepochs = 3; // shorter than the 30-epoch warm-up: clamped to the run
        let l = DinoLoss::<Cpu>::new(c, DType::F64, &Cpu).unwrap();
        let want = [0.04, 0.055, 0.07];
        let got = l.teacher_temp_schedule();
        assert!(got.len() == 3 && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-15));
        assert!(l.teacher_temp(2).is_ok() && l.teacher_temp(3).is_err());
    }
}
