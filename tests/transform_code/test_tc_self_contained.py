"""transform_code ships alone as code/: it may import only stdlib, numpy, torch and its siblings."""

import ast
import subprocess
import sys
from pathlib import Path

from velibcast.transform_code import inference

CODE = Path(inference.__file__).parent
ALLOWED = set(sys.stdlib_module_names) | {"numpy", "torch", "sagemaker_inference"}  # the last only in a try


def test_imports_are_stdlib_numpy_torch_or_siblings():
    siblings = {p.stem for p in CODE.glob("*.py")}
    assert "inference" in siblings  # the folder is found (a wrong path would pass vacuously)
    for path in CODE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED | siblings, f"{path.name} imports {name}"


def test_code_dir_runs_as_plain_folder_like_in_the_container(model_dir, features, to_csv):
    script = f"""
import sys
sys.path.insert(0, {str(model_dir / 'code')!r})
import inference
m = inference.model_fn({str(model_dir)!r})
out = inference.output_fn(inference.predict_fn(inference.input_fn(sys.stdin.read(), "text/csv"), m), "text/csv")
assert not [k for k in sys.modules if k.startswith("velibcast")], "imported velibcast"
sys.stdout.write(out[0])
"""
    body = to_csv(features(5))
    res = subprocess.run([sys.executable, "-I", "-c", script], input=body, capture_output=True, text=True,
                         cwd=model_dir, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 5
