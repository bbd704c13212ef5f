"""GaussianModel: the standard 3DGS .ply layout, round trips, refusal of bad files, subsets."""
import numpy as np
import pytest

from mixed_reality.gaussians import PLY_PROPERTIES, SH_C0, GaussianModel, GaussianModelError


def random_model(count: int = 50, seed: int = 0) -> GaussianModel:
    rng = np.random.default_rng(seed)
    quaternions = rng.normal(size=(count, 4))
    return GaussianModel(means=rng.uniform(-100, 100, (count, 3)), scales=rng.uniform(0.01, 2.0, (count, 3)),
                         rotations=quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True),
                         opacities=rng.uniform(0.01, 0.99, count), colors=rng.uniform(0.0, 1.0, (count, 3)),
                         background=(0.1, 0.2, 0.3))


def test_ply_round_trip(tmp_path):
    model = random_model()
    path = tmp_path / "scene" / "model.ply"
    model.save_ply(path)
    loaded = GaussianModel.load_ply(path)
    assert len(loaded) == len(model)
    for name in ("means", "scales", "rotations", "opacities", "colors"):
        np.testing.assert_allclose(getattr(loaded, name), getattr(model, name), rtol=1e-5, atol=1e-6)
        assert getattr(loaded, name).dtype == np.float32
    assert loaded.background == pytest.approx(model.background)


def test_ply_is_the_standard_3dgs_layout(tmp_path):
    model = random_model(3)
    path = tmp_path / "model.ply"
    model.save_ply(path)
    data = path.read_bytes()
    header, body = data.split(b"end_header\n", 1)
    lines = header.decode("ascii").splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    assert "element vertex 3" in lines
    assert [line.split()[2] for line in lines if line.startswith("property")] == list(PLY_PROPERTIES)
    assert all(line.startswith("property float ") for line in lines if line.startswith("property"))
    table = np.frombuffer(body, dtype=np.dtype([(name, "<f4") for name in PLY_PROPERTIES]))
    np.testing.assert_allclose(table["f_dc_1"], (model.colors[:, 1] - 0.5) / SH_C0, rtol=1e-5)
    np.testing.assert_allclose(table["opacity"], np.log(model.opacities / (1 - model.opacities)), rtol=1e-4)
    np.testing.assert_allclose(table["scale_2"], np.log(model.scales[:, 2]), rtol=1e-5)
    np.testing.assert_allclose(table["rot_0"], model.rotations[:, 0], rtol=1e-6)
    assert np.all(table["nx"] == 0.0)


def test_load_accepts_extra_properties_in_any_order_and_normalises_rotations(tmp_path):
    # As 3DGS training writes it: normals, degree-3 spherical harmonics, unnormalised quaternions.
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)] + [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    table = np.zeros(2, dtype=np.dtype([(name, "<f4") for name in names]))
    table["x"] = [1.0, 2.0]
    table["rot_0"] = [2.0, 0.0]
    table["rot_3"] = [0.0, -3.0]
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 2\n" + "".join(
        f"property float {name}\n" for name in names) + "end_header\n"
    path = tmp_path / "trained.ply"
    path.write_bytes(header.encode() + table.tobytes())
    model = GaussianModel.load_ply(path)
    np.testing.assert_allclose(model.means[:, 0], [1.0, 2.0])
    np.testing.assert_allclose(model.rotations, [[1, 0, 0, 0], [0, 0, 0, -1]])
    np.testing.assert_allclose(model.opacities, 0.5)
    np.testing.assert_allclose(model.colors, 0.5)
    np.testing.assert_allclose(model.scales, 1.0)


@pytest.mark.parametrize("damage, message", [
    (lambda data: None, "cannot read"),
    (lambda data: b"not a ply at all", "not a .ply"),
    (lambda data: data[:-10], "truncated"),
    (lambda data: data.replace(b"binary_little_endian", b"ascii"), "unsupported .ply format"),
    (lambda data: data.replace(b"property float opacity", b"property float opaque"), "missing properties opacity"),
    (lambda data: data.replace(b"property float x", b"property double x"), "need float32"),
])
def test_unusable_files_name_the_file_and_the_fix(tmp_path, damage, message):
    path = tmp_path / "model.ply"
    random_model(5).save_ply(path)
    damaged = damage(path.read_bytes())
    if damaged is None:
        path.unlink()
    else:
        path.write_bytes(damaged)
    with pytest.raises(GaussianModelError, match=message) as error:
        GaussianModel.load_ply(path)
    assert str(path) in str(error.value) and "build-gaussian-scene" in str(error.value)


def test_non_finite_values_are_refused(tmp_path):
    model = random_model(4)
    model.means[2, 1] = np.nan
    path = tmp_path / "model.ply"
    model.save_ply(path)
    with pytest.raises(GaussianModelError, match="non-finite"):
        GaussianModel.load_ply(path)


def test_subset_concatenate_and_shape_checks():
    model = random_model(10)
    picked = model.subset(model.opacities > 0.5)
    assert len(picked) == int((model.opacities > 0.5).sum())
    joined = GaussianModel.concatenate([picked, model.subset(np.array([0, 1]))])
    assert len(joined) == len(picked) + 2 and joined.background == model.background
    np.testing.assert_array_equal(joined.means[-2:], model.means[:2])
    with pytest.raises(ValueError, match="scales"):
        GaussianModel(model.means, model.scales[:3], model.rotations, model.opacities, model.colors)
    with pytest.raises(ValueError, match="background"):
        GaussianModel(model.means, model.scales, model.rotations, model.opacities, model.colors, (2.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="at least one"):
        GaussianModel.concatenate([])
