"""Runs the training tests and writes their counts for .ci/run (unittest has no machine-readable report)."""
import json
import os
import sys
import unittest

if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    suite = unittest.defaultTestLoader.discover(os.path.join(root, "training", "tests"), top_level_dir=root)
    result = unittest.TextTestRunner(verbosity=1).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    report = os.environ.get("PYTHON_TEST_REPORT")
    if report:
        os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
        with open(report, "w") as f:
            json.dump({"passed": result.testsRun - failed - len(result.skipped), "failed": failed, "skipped": len(result.skipped)}, f)
    sys.exit(0 if result.wasSuccessful() else 1)
