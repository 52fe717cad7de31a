"""``/usr/bin/python3 -m training.train_tokenizer --out models/e2llm-tiny/tokenizer.json``"""
from training.e2llm.tokenizer import main

if __name__ == "__main__":
    main()
