"""`python3 -m training.train --config training/configs/<name>.json` (see training/e2llm/train.py)."""
from training.e2llm.train import main

if __name__ == "__main__":
    main()
