"""Cluster stage: group recalled hits by similarity and label each group with real words."""

from engram.cluster.grouping import Cluster, cluster_hits, tfidf_vectors
from engram.cluster.labels import c_tf_idf, label_clusters, surface_forms

__all__ = [
    "Cluster",
    "c_tf_idf",
    "cluster_hits",
    "label_clusters",
    "surface_forms",
    "tfidf_vectors",
]
