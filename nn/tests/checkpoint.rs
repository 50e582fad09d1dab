//! Safetensors checkpoints: round trips of every dtype, atomic saves, clear load errors.

use std::borrow::Cow;
use std::path::PathBuf;
use tessera_nn::checkpoint::{check_state_dict, load_state_dict, select_prefix, with_prefix};
use tessera_nn::{Checkpoint, Error, Metadata, StateDict};
use tessera_tensor::{bf16, f16, Cpu, DType, Tensor};

/// A fresh directory under the system temp dir, unique per test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-nn-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sample() -> StateDict<Cpu> {
    let mut sd = StateDict::new();
    sd.insert(
        "conv1.weight".into(),
        Tensor::from_vec(
            // Extremes but finite: loading refuses NaN and infinities (tests/fuzz_regressions.rs).
            vec![1.5f32, -0.0, f32::MAX, 1e-42, -3.25, 7.0],
            &[2, 3],
            &Cpu,
        )
        .unwrap(),
    );
    sd.insert(
        "fc.bias".into(),
        Tensor::from_vec(vec![0.1f64, -2.0, f64::MIN_POSITIVE], &[3], &Cpu).unwrap(),
    );
    let h: Vec<f16> = [0.5f32, -65504.0, 6e-8]
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    sd.insert("half".into(), Tensor::from_vec(h, &[3, 1], &Cpu).unwrap());
    let b: Vec<bf16> = [1.0f32, -3e38, 0.007]
        .iter()
        .map(|&x| bf16::from_f32(x))
        .collect();
    sd.insert(
        "layer1.0.bn1.weight".into(),
        Tensor::from_vec(b, &[3], &Cpu).unwrap(),
    );
    sd.insert(
        "bn.num_batches_tracked".into(),
        Tensor::from_vec(vec![i64::MAX], &[], &Cpu).unwrap(),
    );
    sd.insert(
        "mask".into(),
        Tensor::from_vec(vec![0u8, 1, 255], &[1, 3], &Cpu).unwrap(),
    );
    sd.insert(
        "empty".into(),
        Tensor::zeros(&[0, 4], DType::F32, &Cpu).unwrap(),
    );
    sd
}

fn assert_same(a: &StateDict<Cpu>, b: &StateDict<Cpu>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in a {
        let u = &b[k];
        assert_eq!((t.shape(), t.dtype()), (u.shape(), u.dtype()), "{k}");
        // HostBuffer equality compares bits of these non-NaN values (and -0.0 == 0.0, so also
        // compare the f64 bit patterns).
        assert_eq!(t.to_host().unwrap(), u.to_host().unwrap(), "{k}");
        let bits = |x: &Tensor<Cpu>| {
            x.to_f64_vec()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(t), bits(u), "{k}");
    }
}

#[test]
fn bytes_round_trip_every_dtype_and_metadata() {
    let mut ck = Checkpoint::new(sample());
    ck.metadata.insert("epoch".into(), "7".into());
    ck.metadata.insert("args".into(), "{\"lr\": 0.0005}".into());
    let bytes = ck.to_bytes().unwrap();
    let back = Checkpoint::<Cpu>::from_bytes(&bytes, &Cpu).unwrap();
    assert_same(&ck.tensors, &back.tensors);
    assert_eq!(back.metadata, ck.metadata);
    // Without metadata the bytes are deterministic (the safetensors crate writes the metadata
    // map in hash order).
    let plain = Checkpoint::new(sample()).to_bytes().unwrap();
    assert_eq!(Checkpoint::new(back.tensors).to_bytes().unwrap(), plain);
}

#[test]
fn views_are_saved_in_logical_order() {
    let a = Tensor::from_vec(vec![1.0f32, 2., 3., 4., 5., 6.], &[2, 3], &Cpu).unwrap();
    let mut sd = StateDict::new();
    sd.insert("t".to_string(), a.t().unwrap());
    let back =
        Checkpoint::<Cpu>::from_bytes(&Checkpoint::new(sd).to_bytes().unwrap(), &Cpu).unwrap();
    assert_eq!(back.tensors["t"].shape(), &[3, 2]);
    assert_eq!(
        back.tensors["t"].to_vec::<f32>().unwrap(),
        vec![1., 4., 2., 5., 3., 6.]
    );
}

#[test]
fn file_save_is_atomic_and_overwrites() {
    let dir = temp_dir("atomic");
    let path = dir.join("ckpt.safetensors");
    let tmp = dir.join("ckpt.safetensors.tmp");
    let mut ck = Checkpoint::new(sample());
    ck.save(&path).unwrap();
    assert!(!tmp.exists(), "the temporary file is renamed away");
    assert_same(
        &Checkpoint::<Cpu>::load(&path, &Cpu).unwrap().tensors,
        &ck.tensors,
    );

    // Overwrite with different content.
    ck.metadata.insert("epoch".into(), "8".into());
    ck.tensors.remove("mask");
    ck.save(&path).unwrap();
    let back = Checkpoint::<Cpu>::load(&path, &Cpu).unwrap();
    assert!(!back.tensors.contains_key("mask"));
    assert_eq!(back.metadata["epoch"], "8");

    // A write that fails (the .tmp path is a directory) leaves the old file intact.
    std::fs::create_dir(&tmp).unwrap();
    let mut other = Checkpoint::<Cpu>::new(StateDict::new());
    other.metadata.insert("epoch".into(), "9".into());
    let e = other.save(&path).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("ckpt.safetensors.tmp"), "{e}");
    assert_eq!(
        Checkpoint::<Cpu>::load(&path, &Cpu).unwrap().metadata["epoch"],
        "8"
    );
    std::fs::remove_dir(&tmp).unwrap();

    // A stale .tmp file from a crash does not get in the way.
    std::fs::write(&tmp, b"garbage").unwrap();
    other.save(&path).unwrap();
    assert_eq!(
        Checkpoint::<Cpu>::load(&path, &Cpu).unwrap().metadata["epoch"],
        "9"
    );
    assert!(!tmp.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn io_and_format_errors_are_clear() {
    let dir = temp_dir("errors");
    let missing = dir.join("nope.safetensors");
    let e = Checkpoint::<Cpu>::load(&missing, &Cpu).unwrap_err();
    assert!(e.to_string().contains("nope.safetensors"), "{e}");
    assert!(std::error::Error::source(&e).is_some());

    let e = Checkpoint::<Cpu>::from_bytes(b"not a safetensors file", &Cpu).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tensor in a dtype Tessera lacks, written with the safetensors crate itself.
struct Foreign(safetensors::Dtype, Vec<u8>);
impl safetensors::View for Foreign {
    fn dtype(&self) -> safetensors::Dtype {
        self.0
    }
    fn shape(&self) -> &[usize] {
        &[2]
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.1)
    }
    fn data_len(&self) -> usize {
        self.1.len()
    }
}

#[test]
fn bool_loads_as_u8_and_other_dtypes_are_named() {
    let bytes =
        safetensors::serialize([("m", Foreign(safetensors::Dtype::BOOL, vec![1, 0]))], None)
            .unwrap();
    let ck = Checkpoint::<Cpu>::from_bytes(&bytes, &Cpu).unwrap();
    assert_eq!(ck.tensors["m"].to_vec::<u8>().unwrap(), vec![1, 0]);

    let bytes = safetensors::serialize(
        [("idx", Foreign(safetensors::Dtype::I32, vec![0; 8]))],
        None,
    )
    .unwrap();
    let e = Checkpoint::<Cpu>::from_bytes(&bytes, &Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"idx\"") && e.contains("I32"), "{e}");
}

#[test]
fn loading_into_a_model_reports_every_problem() {
    let model = sample();
    let mut loaded = sample();
    loaded.insert(
        "conv1.weight".into(),
        Tensor::zeros(&[3, 2], DType::F32, &Cpu).unwrap(),
    );
    loaded.remove("fc.bias");
    loaded.insert(
        "head.weight".into(),
        Tensor::zeros(&[1], DType::F32, &Cpu).unwrap(),
    );

    let e = load_state_dict(&model, &loaded, true).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("size mismatch for \"conv1.weight\""), "{msg}");
    assert!(msg.contains("[3, 2]") && msg.contains("[2, 3]"), "{msg}");
    assert!(msg.contains("missing key(s) (1): \"fc.bias\""), "{msg}");
    assert!(
        msg.contains("unexpected key(s) (1): \"head.weight\""),
        "{msg}"
    );
    match e {
        Error::StateDict {
            missing,
            unexpected,
            mismatched,
        } => {
            assert_eq!(missing, ["fc.bias"]);
            assert_eq!(unexpected, ["head.weight"]);
            assert_eq!(
                mismatched,
                [("conv1.weight".to_string(), vec![3, 2], vec![2, 3])]
            );
        }
        other => panic!("{other:?}"),
    }

    // Not strict: missing and unexpected keys are fine, shape mismatches are not.
    assert!(load_state_dict(&model, &loaded, false).is_err());
    loaded.insert(
        "conv1.weight".into(),
        Tensor::ones(&[2, 3], DType::F64, &Cpu).unwrap(),
    );
    let out = load_state_dict(&model, &loaded, false).unwrap();
    assert_eq!(out.len(), model.len());
    assert_eq!(
        out["conv1.weight"].dtype(),
        DType::F32,
        "cast to the model's dtype"
    );
    assert_eq!(out["conv1.weight"].to_vec::<f32>().unwrap(), vec![1.0; 6]);
    assert_eq!(
        out["fc.bias"].to_vec::<f64>().unwrap(),
        model["fc.bias"].to_vec::<f64>().unwrap()
    );

    let shapes: Vec<(&str, &[usize])> = vec![("a", &[1])];
    let e = check_state_dict(&StateDict::<Cpu>::new(), shapes, true).unwrap_err();
    assert!(e.to_string().contains("\"a\""));
}

#[test]
fn prefixes_split_one_file_into_state_dicts() {
    let sd = sample();
    let mut all = with_prefix(&sd, "student.");
    all.extend(with_prefix(&sd, "teacher."));
    assert_eq!(all.len(), 2 * sd.len());
    assert!(all.contains_key("teacher.conv1.weight"));
    assert_same(&select_prefix(&all, "student."), &sd);
}

#[test]
fn the_python_fixture_loads() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/nn_optim.safetensors"
    );
    let ck = Checkpoint::<Cpu>::load(path, &Cpu).unwrap();
    assert_eq!(ck.metadata["_format"], "tessera-nn-fixtures-v1");
    assert_eq!(ck.tensors["init.w"].shape(), &[3, 2]);
    let _: &Metadata = &ck.metadata;
}
