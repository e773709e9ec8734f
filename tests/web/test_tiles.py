"""Tile endpoints: metadata, caching headers, pyramid bounds, edge tiles, masks, errors."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from inkweb.core.storage import storage_make_read_only, storage_relative, storage_root
from inkweb.slides.models import Slide
from inkweb.slides.services import file_sha256, slide_import
from inkweb.tiles import sources
from tests.web.conftest import client_for


@pytest.fixture
def cmu_slide(db, shared_data, uploader):
    return slide_import(
        path=shared_data / "slides" / "cmu-1-small-region.svs", imported_by=uploader
    )


def _image(response) -> Image.Image:
    return Image.open(io.BytesIO(response.content))


@pytest.mark.django_db
def test_original_info(cmu_slide, uploader):
    info = client_for(uploader).get(f"/api/slides/{cmu_slide.pk}/tiles/original/info").json()
    assert info["sizeX"] == 2220
    assert info["sizeY"] == 2967
    assert info["tileWidth"] == 240
    assert info["tileHeight"] == 240
    assert info["levels"] >= 5
    assert info["mm_x"] == pytest.approx(0.000499, rel=0.01)
    assert (
        info["tile_url_template"]
        == f"/api/slides/{cmu_slide.pk}/tiles/original/{{z}}/{{x}}/{{y}}.jpeg"
    )


@pytest.mark.django_db
def test_tile_headers_and_304(cmu_slide, uploader, settings):
    client = client_for(uploader)
    url = f"/api/slides/{cmu_slide.pk}/tiles/original/2/0/0.jpeg"
    response = client.get(url, HTTP_ACCEPT="image/avif,image/webp,image/*,*/*;q=0.8")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == f"private, max-age={settings.INKWEB_TILE_CACHE_SECONDS}"
    etag = response["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert _image(response).format == "JPEG"

    cached = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert cached.status_code == 304
    assert cached["ETag"] == etag
    assert cached.content == b""

    other = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/2/1/0.jpeg")
    assert other["ETag"] != etag


@pytest.mark.django_db
def test_edge_tiles_cropped(cmu_slide, uploader):
    client = client_for(uploader)
    levels = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/info").json()["levels"]
    full = levels - 1
    # Level 0 is 2220 x 2967 px in 240 px tiles: 10 columns, 13 rows, the last ones partial.
    corner = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/{full}/9/12.jpeg")
    assert corner.status_code == 200
    assert _image(corner).size == (2220 - 9 * 240, 2967 - 12 * 240)
    inner = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/{full}/0/0.jpeg")
    assert _image(inner).size == (240, 240)
    # Downsample 16 gives ceil(2220 / 16) x ceil(2967 / 16) = 139 x 186 in one tile.
    small = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/{full - 4}/0/0.jpeg")
    assert _image(small).size == (139, 186)


@pytest.mark.django_db
def test_outside_pyramid_404(cmu_slide, uploader):
    client = client_for(uploader)
    levels = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/info").json()["levels"]
    full = levels - 1
    outside = [f"{levels}/0/0", f"{full}/10/0", f"{full}/0/13", "0/1/0", "0/0/1", "99/0/0"]
    for tile in outside:
        response = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/{tile}.jpeg")
        assert response.status_code == 404, tile
        assert response.json()["code"] == "tile_not_found", tile


@pytest.mark.django_db
def test_small_pyramid_edges(shared_data, uploader):
    slide = slide_import(path=shared_data / "slides" / "boxes.tiff", imported_by=uploader)
    client = client_for(uploader)
    info = client.get(f"/api/slides/{slide.pk}/tiles/original/info").json()
    assert (info["sizeX"], info["sizeY"], info["tileWidth"]) == (300, 250, 64)
    top = info["levels"] - 1
    edge = client.get(f"/api/slides/{slide.pk}/tiles/original/{top}/4/3.png")
    assert _image(edge).size == (300 - 4 * 64, 250 - 3 * 64)
    assert client.get(f"/api/slides/{slide.pk}/tiles/original/{top}/5/0.png").status_code == 404


@pytest.mark.django_db
def test_orientation_tag_honoured(shared_data, uploader):
    path = shared_data / "slides" / "orientation6.tif"
    slide = slide_import(path=path, imported_by=uploader)
    client = client_for(uploader)
    info = client.get(f"/api/slides/{slide.pk}/tiles/original/info").json()
    top = info["levels"] - 1
    tile = np.asarray(_image(client.get(f"/api/slides/{slide.pk}/tiles/original/{top}/0/0.png")))
    # Orientation 6 stores the picture turned a quarter counter-clockwise; it is shown
    # turned back clockwise, as the pipeline writes the restored slide.
    stored = tifffile.imread(path)  # (180, 120)
    expected = np.rot90(stored, k=-1)  # (120, 180)

    assert (info["sizeX"], info["sizeY"]) == (180, 120)
    assert tile.shape[:2] == expected.shape
    assert np.array_equal(tile[..., 0], expected)


@pytest.mark.django_db
def test_restored_before_any_run_404(ready_slide, uploader):
    response = client_for(uploader).get(f"/api/slides/{ready_slide.pk}/tiles/restored/info")
    assert response.status_code == 404
    assert response.json()["code"] == "no_output"


@pytest.mark.django_db
def test_restored_and_mask_tiles(processed_run, uploader):
    client = client_for(uploader)
    slide_id = processed_run.slide_id
    restored = client.get(f"/api/slides/{slide_id}/tiles/restored/info").json()
    assert (restored["sizeX"], restored["sizeY"]) == (754, 631)
    assert restored["run_id"] == processed_run.pk
    assert restored["tile_url_template"].endswith(f"?run={processed_run.pk}")

    mask_info = client.get(f"/api/slides/{slide_id}/tiles/mask/info").json()
    assert mask_info["format"] == "png"
    top = mask_info["levels"] - 1
    columns = -(-mask_info["sizeX"] // mask_info["tileWidth"])
    rows = -(-mask_info["sizeY"] // mask_info["tileHeight"])
    alphas = []
    for x in range(columns):
        for y in range(rows):
            tile = client.get(f"/api/slides/{slide_id}/tiles/mask/{top}/{x}/{y}.png")
            assert tile.status_code == 200
            image = _image(tile)
            assert image.mode == "RGBA"
            alphas.append(np.asarray(image)[:, :, 3])
    values = np.concatenate([alpha.ravel() for alpha in alphas])
    assert set(np.unique(values)) <= {0, 255}
    # Most of the image is ink-free and must stay transparent.
    assert (values == 0).mean() > 0.5
    if processed_run.ink_found:
        assert (values == 255).any()

    assert client.get(f"/api/slides/{slide_id}/tiles/mask/{top}/0/0.jpeg").status_code == 404


@pytest.mark.django_db
def test_tile_bytes_cached_in_redis(cmu_slide, uploader, monkeypatch):
    client = client_for(uploader)
    url = f"/api/slides/{cmu_slide.pk}/tiles/original/1/0/0.jpeg"
    first = client.get(url)
    assert first.status_code == 200

    def broken(*args, **kwargs):
        raise AssertionError("the tile should come from the cache")

    monkeypatch.setattr(sources.LargeImageReader, "read_tile", broken)
    second = client.get(url)
    assert second.status_code == 200
    assert second.content == first.content


@pytest.mark.django_db
def test_corrupt_tile_answers_502(shared_data, uploader, cmu_slide):
    # Stored without the upload probe, as if it had been damaged after ingest.
    source = shared_data / "bad" / "corrupt-jpeg-tile.svs"
    folder = storage_root() / "originals" / "corrupt"
    folder.mkdir(parents=True)
    target = folder / source.name
    shutil.copyfile(source, target)
    storage_make_read_only(target)
    slide = Slide.objects.create(
        name="corrupt",
        original_filename=source.name,
        original_path=storage_relative(target),
        file_size_bytes=target.stat().st_size,
        sha256=file_sha256(target),
        width=16,
        height=16,
        ingest_status=Slide.IngestStatus.READY,
    )
    client = client_for(uploader)

    response = client.get(f"/api/slides/{slide.pk}/tiles/original/0/0/0.jpeg")
    assert response.status_code == 502
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] in {"tile_read_failed", "tile_source_unreadable"}
    assert "slide" in response.json()["detail"]

    healthy = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/0/0/0.jpeg")
    assert healthy.status_code == 200


@pytest.mark.django_db
def test_tiles_need_authentication(cmu_slide, client):
    response = client.get(f"/api/slides/{cmu_slide.pk}/tiles/original/0/0/0.jpeg")
    assert response.status_code == 403
    assert response.json()["code"] == "not_authenticated"
