"""`python3 -m app` prints a small statistic, so the image does something."""

import numpy as np
import pandas as pd
from scipy import stats

df = pd.DataFrame({"x": np.arange(10.0)})
print(df["x"].mean(), stats.describe(df["x"]).variance)
