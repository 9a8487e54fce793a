"""The README's reliability table: one row per input or fault, what happens,
and the tests that prove it.

The rows are written here; the script renders them into README.md between
``<!-- reliability table -->`` and ``<!-- end reliability table -->``, and checks that every test
a row names exists (a renamed or deleted test fails ``--check``, which a test runs). So the
table cannot name a test that is gone, and the README cannot drift from this list.

    python scripts/reliability_table.py          # rewrite the README's block
    python scripts/reliability_table.py --check  # exit 1 if the block is stale or a test is missing
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- reliability table -->", "<!-- end reliability table -->"

# (input or fault, what happens, tests as "FILE::NAME" relative to tests/; NAME alone for the row's
# previous file). Issue numbers in brackets: the item of issue 16 a row answers.
ROWS: list[tuple[str, str, list[str]]] = [
    (
        "path that does not exist, zero-byte file, garbage bytes named .mp4 (also behind a real "
        "`ftyp` header), a text file, a folder with no frames",
        "one line saying what is wrong (`input not found`, `input file is empty`, `cannot decode "
        "… not a video`, `no image frames`)",
        [
            "test_annotate.py::test_bad_input_one_line_exit_2_no_output",
            "reliability/test_rel_inputs.py::test_disguised_inputs_named_mp4",
        ],
    ),
    (
        "damaged stretch in the middle of a video (3 KB of noise at 40 %) [1]",
        "every frame FFmpeg decodes comes out, in order, through to the end; the true count of "
        "lost frames; exit 3 and `PARTIAL` (written, incomplete); sidecar `complete: false`",
        [
            "reliability/test_rel_damaged.py::test_damaged_middle_exports_every_decodable_frame_and_says_partial"
        ],
    ),
    (
        "`--strict` on a damaged input, over an earlier complete export [1]",
        "one line, exit 3, nothing written: the earlier export and log stay byte-identical",
        ["test_strict_never_replaces_a_complete_export_with_a_partial_one"],
    ),
    (
        "input cut short while the export runs [1]",
        "what was there comes out, reported partial (`complete` False); strict: nothing replaces "
        "the old export",
        ["test_input_cut_short_while_exporting_is_a_partial_export"],
    ),
    (
        "the app on a damaged clip [1]",
        "plays and seeks past the damage to the real end; File > Export writes every decodable "
        "frame and says "
        '"Partial export: N of M frames"',
        [
            "test_the_app_plays_and_seeks_past_the_damage",
            "gui/test_gui_reliability.py::test_a_damaged_clip_exports_to_its_end_and_says_partial",
        ],
    ),
    (
        "MP4 cut at 40 % of its bytes (index at the front, as our exports are)",
        "every decodable frame, in order; one warning `decoded N of M frames …`; exit 3 (partial)",
        [
            "reliability/test_rel_inputs.py::test_truncated_at_40_percent_exports_every_decodable_frame"
        ],
    ),
    (
        "MP4 cut at 40 % with its index at the end (nothing decodable)",
        "one line `cannot decode …`",
        ["test_truncated_mp4_without_index_is_a_clear_error"],
    ),
    (
        "MPEG-TS cut at 40 %",
        "every frame FFmpeg decodes, in order, the damaged last one included (OpenCV's reader "
        "repeated the frame before it; files are decoded with PyAV)",
        [
            "test_truncated_transport_stream_exports_what_is_there",
            "test_truncated_transport_stream_last_frame_is_not_a_repeat",
        ],
    ),
    (
        "frame size changes mid-stream",
        "every frame out, in order; frames of another size are letterboxed into the first size "
        "(aspect kept), counted",
        ["test_frame_size_change_mid_stream"],
    ),
    (
        "folder of mixed sizes (a 64x48 thumbnail first, a portrait frame) [8]",
        "the video takes the size most frames have; the others are letterboxed, never squashed; "
        "sizes and the letterboxed count in a warning and the sidecar; masks at each frame's own "
        "size",
        [
            "reliability/test_rel_names.py::test_mixed_sizes_are_written_at_the_usual_size_and_letterboxed",
            "reliability/test_rel_inputs.py::test_folder_with_mixed_sizes_and_a_stray_file",
        ],
    ),
    (
        "`1.png` and `1.jpg` in one folder [8]",
        "two frames, two log lines, two masks (`1_png`, `1_jpg`); a warning and `shared_stems` "
        "in the sidecar",
        [
            "reliability/test_rel_names.py::test_two_files_with_one_stem_are_two_frames_with_two_masks"
        ],
    ),
    (
        "stray non-image files, unreadable images in a folder",
        "every readable frame in natural order; warnings name what was skipped, each once; an "
        "unreadable image makes the export partial (exit 3)",
        [
            "reliability/test_rel_inputs.py::test_folder_with_mixed_sizes_and_a_stray_file",
            "test_unreadable_frames_counted_once_with_blackout",
        ],
    ),
    (
        "grayscale and 4-channel video; 8/16-bit grayscale, BGRA, TIFF frames",
        "converted to BGR at the source, every frame out",
        [
            "test_grayscale_and_four_channel_videos",
            "test_grayscale_16bit_and_four_channel_frames_in_a_folder",
        ],
    ),
    (
        "64x48, 3840x2160, 1x1 and odd-sized frames",
        "same size out (odd sizes padded by one pixel for H.264 4:2:0), masks at frame size",
        ["test_tiny_and_4k_frames", "test_one_pixel_frames"],
    ),
    (
        "variable-frame-rate file [9]",
        "every frame, in order, written at the file's own timestamps: the video's clock and the "
        "log's `t` agree; `variable_frame_rate` in the sidecar",
        [
            "reliability/test_rel_names.py::test_variable_frame_rate_keeps_its_timing_in_the_video",
            "reliability/test_rel_inputs.py::test_variable_frame_rate_file",
        ],
    ),
    (
        "gap in a numbered frame sequence [9]",
        "frames play one interval apart; a warning and `numbering_gaps` name the missing numbers",
        ["reliability/test_rel_names.py::test_a_gap_in_a_numbered_sequence_is_reported"],
    ),
    (
        "non-square pixels (PAL 720x576, 16:15) [9]",
        "kept in the output (shows at 4:3); `pixel_aspect` in the sidecar",
        ["test_non_square_pixels_keep_their_aspect_ratio"],
    ),
    (
        "a file named `demo`, `synthetic` or `synthetic_phantom.mp4` in the current folder [7]",
        "read as that file (the sidecar's `input_read` names it); the keywords stay reachable as "
        "`builtin:demo`, `builtin:synthetic`",
        [
            "test_a_file_named_like_a_keyword_is_that_file",
            "test_the_keywords_stay_reachable_unambiguously",
        ],
    ),
    (
        "a video whose name holds `%` (`50%done.mp4`, `case_%d.mp4`) [7]",
        "read as a video (an existing file is never a frame pattern)",
        ["test_a_video_whose_name_holds_a_percent_sign"],
    ),
    (
        "model missing, corrupt, truncated, a folder, without the contract, contract not JSON",
        "one line (`model file not found`, `not a loadable ONNX model`, `no 'polypvision' "
        "contract`, …)",
        [
            "test_annotate.py::test_contract_missing_model",
            "test_contract.py::test_missing_corrupt_empty_model",
            "reliability/test_rel_models.py::test_broken_model_one_line_exit_2_no_output",
        ],
    ),
    (
        "model error with a long path and a C++ location before its reason (ONNX IR version too "
        "new) [10]",
        "the line keeps the reason (`Unsupported model IR version: 99, …`), not the first 160 "
        "characters",
        ["reliability/test_rel_small.py::test_a_model_error_keeps_its_cause"],
    ),
    (
        "model with the wrong input size or layout, or one that only fails when run",
        "one line naming the mismatch (`height 32 but the contract says 64`, `returned 1 masks "
        "for 4 frames`)",
        [
            "reliability/test_rel_models.py::test_broken_model_one_line_exit_2_no_output",
            "test_model_that_only_fails_when_run",
        ],
    ),
    (
        "model output contains NaN",
        "runs; masks empty; log `polyp: false`",
        ["test_nan_model_runs_with_empty_masks", "test_nan_model_in_the_live_pipeline"],
    ),
    (
        "`--fps nan` / `inf`, `--batch 100000`, `-o x.avi` or no suffix, `--style ,` [10]",
        "one line each (a finite rate above 0; batch 1-64; .mp4, .m4v, .mov or .mkv; at least "
        "one of fill, contour, box, or `none`)",
        [
            "reliability/test_rel_small.py::test_fps_that_is_not_a_finite_positive_number",
            "test_batch_size_is_bounded",
            "test_outputs_and_styles_that_would_do_something_else",
        ],
    ),
    (
        "Ctrl-C in the first half second (while the command imports) [10]",
        "exit 130, `interrupted; no output was written`, no traceback (from the moment Python "
        "runs our code)",
        ["test_ctrl_c_at_start_up_is_one_line_and_status_130"],
    ),
    (
        "live source unplugged, then back",
        "status ok -> signal lost (at once: a few silent frame intervals) -> ok, retry with "
        "backoff, results resume, no error; rates fall to zero meanwhile",
        [
            "reliability/test_rel_faults.py::test_live_signal_lost_and_back_through_the_runner",
            "test_live.py::test_signal_loss_is_reported_at_once_and_figures_reset_on_a_model_swap",
        ],
    ),
    (
        "live source unplugged for good",
        "keeps retrying with backoff; stop() ends every thread",
        [
            "reliability/test_rel_faults.py::test_unplugged_for_good_retries_with_backoff_and_stops_cleanly"
        ],
    ),
    (
        "disk full while writing video, log or masks, or at the final flush",
        "one line naming the file; temporary files removed; an earlier video, log and masks "
        "folder byte-identical",
        [
            "test_disk_full_clear_error_earlier_outputs_untouched",
            "test_annotate.py::test_write_failure_keeps_existing_output_and_removes_temp",
        ],
    ),
    (
        "a real full disk (a 32 KB tmpfs) under `--masks` [2]",
        "one line `cannot write mask PNGs … No space left on device`, nothing left on that disk "
        "(cv2.imwrite reported success for PNGs cut to 0 bytes: every PNG is now encoded in "
        "memory and its write and close checked)",
        [
            "reliability/test_rel_outputs.py::test_masks_on_a_real_full_disk_fail_clearly_and_leave_nothing"
        ],
    ),
    (
        "disk full at the very end (sidecar write, encoder flush)",
        "every output is completed (and synced) under a temporary name before any is renamed, so "
        "nothing is replaced; temporary files removed",
        ["test_annotate.py::test_late_failure_publishes_nothing"],
    ),
    (
        "output folder deleted mid-export",
        "one line; nothing recreated",
        ["reliability/test_rel_faults.py::test_output_folder_removed_during_export"],
    ),
    (
        "cancel, Ctrl-C, SIGTERM or SIGHUP (terminal closed) mid-export [6]",
        "exit 130, `interrupted; no output was written`, no output, no temporary file",
        ["test_cancel_with_every_sink_keeps_earlier_outputs", "test_ctrl_c_mid_export"],
    ),
    (
        "SIGKILL or an out-of-memory kill mid-export [6]",
        "the next run writing to that folder removes the hidden temporary files (one `note:` "
        "line each) and leaves a live run's alone (each temporary file is locked by its writer); "
        "masks moved aside are put back",
        [
            "reliability/test_rel_outputs.py::test_a_killed_export_leaves_litter_that_the_next_run_removes",
            "test_masks_moved_aside_by_a_killed_run_are_put_back",
            "test_a_stray_file_named_like_litter_but_unlocked_and_young_is_left_alone",
        ],
    ),
    (
        "exception in a worker (reader, writer, processor)",
        "reaches the caller of `annotate()` / the live runner's `on_error`; threads end",
        [
            "reliability/test_rel_faults.py::test_worker_exception_reaches_annotate_caller",
            "test_worker_exception_reaches_live_on_error",
        ],
    ),
    (
        "exception in a live source's grabber thread (a driver bug)",
        'status "failed"; the next read raises it and the live runner\'s `on_error` reports it',
        ["test_small_fixes.py::test_a_crashing_grabber_is_reported_not_a_silent_ok"],
    ),
    (
        "the live view and an export (or scan) on one model session at once",
        "each stream has its own buffers and smoother; every mask equals a single-threaded run's",
        ["test_engine.py::test_live_view_and_export_on_one_session_never_mix_pixels"],
    ),
    (
        "a model with a fixed batch size above 1",
        "batches are cut and padded to it; live view and exports run",
        ["test_small_fixes.py::test_a_fixed_batch_model_runs_one_frame_and_any_batch"],
    ),
    (
        "a disk that fills while recording [5]",
        "the recording stops at once (REC stops counting) and keeps every complete one-second "
        "fragment under its name; one line says how much and where",
        [
            "reliability/test_rel_recording.py::test_a_disk_that_fills_mid_recording_keeps_what_was_recorded",
            "test_a_real_disk_that_fills_mid_recording_keeps_what_was_recorded",
            "reliability/test_rel_faults.py::test_recorder_with_failing_writer_keeps_what_was_recorded",
            "gui/test_gui_outputs.py::test_a_failing_recording_is_reported",
            "gui/test_gui_reliability.py::test_a_disk_that_fills_while_recording_stops_rec_and_keeps_the_recording",
        ],
    ),
    (
        "SIGTERM (logout, shutdown) or SIGHUP while the app records [5]",
        "the window closes as if closed by hand: the recording is finished and saved under its "
        "name",
        ["gui/test_gui_reliability.py::test_logout_or_a_closed_terminal_finishes_the_recording"],
    ),
    (
        "the app killed (SIGKILL, a crash) while recording [5, 6]",
        "the temporary file plays up to its last fragment (fragmented MP4); the next start of "
        "the app, or the next recording into that folder, recovers it under its name",
        [
            "test_a_killed_sessions_recording_is_recovered_at_the_next_start",
            "reliability/test_rel_recording.py::test_a_killed_recording_is_recovered_by_the_next_run",
        ],
    ),
    (
        "nothing lost (batch 1, 4, 7)",
        "every frame exactly once, in order (decoded index stamps); one log line and one mask "
        "per frame",
        ["reliability/test_rel_nothing_lost.py::test_every_frame_once_in_order_log_and_masks"],
    ),
    (
        "random sizes, dtypes and values into preprocess, postprocess, smoothing, overlay, field "
        "of view (hypothesis)",
        "never crash; shapes, dtypes, ranges right",
        ["reliability/test_rel_fuzz.py::test_preprocessor_shapes_and_values"],
    ),
    (
        "a pickle posing as a model",
        "refused as not ONNX and never unpickled; the runtime imports no pickle/Keras/torch loader",
        [
            "reliability/test_rel_safety.py::test_a_pickle_posing_as_a_model_is_refused_and_never_executed"
        ],
    ),
    (
        "output, log or `--masks` that would overwrite or delete an input",
        "one line `… input itself` / `would replace …`; inputs untouched",
        ["test_exports_never_overwrite_or_delete_an_input"],
    ),
    (
        "`-o` or `--log` naming an input frame, a new file inside the input folder, a file the "
        "input pattern matches, or a log whose sidecar would replace the input [3]",
        "one line (`would overwrite an input`); inputs byte-identical",
        ["reliability/test_rel_outputs.py::test_outputs_never_replace_or_join_the_input_frames"],
    ),
    (
        "`-o` or `--log` naming a character device (a copy of /dev/null) or a named pipe [4]",
        "one line (`is a character device, not a regular file`); the device is left as it is",
        ["test_device_files_are_refused_never_replaced"],
    ),
    (
        "GUI export to a name that exists [10]",
        "asks before replacing; No leaves the earlier export untouched",
        ["gui/test_gui_reliability.py::test_export_asks_before_replacing_an_earlier_export"],
    ),
    (
        "`--blackout` with patient text in the dark border",
        "no pixel outside the field of view survives (decoded output)",
        [
            "reliability/test_rel_safety.py::test_blackout_removes_every_pixel_outside_the_field_of_view"
        ],
    ),
]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        n.name
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    }


def resolve(rows: list[tuple[str, str, list[str]]]) -> tuple[list[list[str]], list[str]]:
    """Each row's tests as ``file::name`` (a bare name takes the file named before it); and the
    tests that do not exist."""
    tests_dir = ROOT / "tests"
    cache: dict[str, set[str]] = {}
    missing, out, current = [], [], ""
    for _, _, names in rows:
        full = []
        for n in names:
            if "::" in n:
                current, name = n.split("::", 1)
            else:
                name = n
            if current not in cache:
                p = tests_dir / current
                cache[current] = _tests_in(p) if p.is_file() else set()
            if name not in cache[current]:
                missing.append(f"{current}::{name}")
            full.append(f"{current}::{name}")
        out.append(full)
    return out, missing


def render(rows: list[tuple[str, str, list[str]]]) -> str:
    full, _ = resolve(rows)
    lines = ["| input or fault | what happens | test |", "|---|---|---|"]
    for (what, happens, _), tests in zip(rows, full):
        cells = ", ".join(f"`{t}`" for t in tests)
        lines.append(f"| {what} | {happens} | {cells} |")
    return "\n".join(lines)


def update(text: str) -> str:
    block = re.compile(re.escape(START) + r"\n.*?" + re.escape(END), re.S)
    if not block.search(text):
        raise SystemExit(f"{README} has no {START} … {END} block")
    return block.sub(lambda _: f"{START}\n{render(ROWS)}\n{END}", text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if stale or a test is missing"
    )
    args = ap.parse_args(argv)
    _, missing = resolve(ROWS)
    if missing:
        print(
            "reliability table names tests that do not exist: " + ", ".join(missing),
            file=sys.stderr,
        )
        return 1
    old = README.read_text(encoding="utf-8")
    new = update(old)
    if args.check:
        if new != old:
            print(
                "README's reliability table is stale; run python scripts/reliability_table.py",
                file=sys.stderr,
            )
            return 1
        return 0
    if new != old:
        tmp = README.with_name(README.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(README)
        print("updated README.md")
    else:
        print("README.md is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
