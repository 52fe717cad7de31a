"""``/usr/bin/python3 -m training.export --out models/e2llm-tiny [--checkpoint FILE] [--seed 0]``"""
from training.e2llm.export import main

if __name__ == "__main__":
    main()
